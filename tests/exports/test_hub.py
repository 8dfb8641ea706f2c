"""Pushes to the Hub with the user's own token, against the fake Hub (tests/fakehub.py):
the real huggingface_hub client creates the repository and commits through LFS."""

import pytest
import yaml
from django.conf import settings
from django.urls import reverse

from exports.models import Export, HubPush, HubToken
from exports.services import create_export, push_to_hub, save_hub_token

pytestmark = pytest.mark.django_db
TOKEN = "hf_ownerWRITEtoken1234"


@pytest.fixture
def adapter_export(finished_run, broker, run_queued, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        export = create_export(finished_run, "adapter")
    run_queued(settings.QUEUE_DEFAULT)
    export.refresh_from_db()
    assert export.status == Export.Status.DONE
    return export


def push(export, repo_id, run_queued, capture, private=True) -> HubPush:
    with capture(execute=True):
        job = push_to_hub(export, repo_id, private=private)
    run_queued(settings.QUEUE_DEFAULT)
    job.refresh_from_db()
    return job


def test_the_token_is_stored_encrypted_and_never_shown_again(owner_client, user):
    page = owner_client.post(reverse("exports:hub_token"), {"token": TOKEN}, follow=True)
    stored = HubToken.objects.get(owner=user)
    assert TOKEN.encode() not in bytes(stored.encrypted)
    assert TOKEN not in page.content.decode() and "…1234" in page.content.decode()
    owner_client.post(reverse("exports:hub_token_delete"))
    assert not HubToken.objects.exists()


def test_a_push_creates_the_repo_and_commits_the_files_with_a_model_card(
    fake_hub, adapter_export, user, run_queued, django_capture_on_commit_callbacks
):
    fake_hub.add_token(TOKEN, "owner")
    save_hub_token(user, TOKEN)
    from evaluations.models import Evaluation

    summary = {
        "examples": 24,
        "metrics": [
            {
                "name": "valid_json",
                "label": "valid JSON",
                "base": {"mean": 0.04},
                "tuned": {"mean": 0.96},
                "test": {"p_value": 0.00001, "significant": True},
            }
        ],
    }
    Evaluation.objects.create(
        owner=user, run=adapter_export.run, status=Evaluation.Status.DONE, summary=summary
    )
    job = push(adapter_export, "owner/tiny-tuned", run_queued, django_capture_on_commit_callbacks)
    assert job.status == HubPush.Status.DONE, job.error
    assert job.url.endswith("/owner/tiny-tuned")
    repo = fake_hub.repos["owner/tiny-tuned"]
    assert fake_hub.private["owner/tiny-tuned"] is True
    assert {"README.md", "adapter_config.json", "adapter_model.safetensors"} <= set(repo.files)
    # the weights went through LFS
    assert repo.sha256("adapter_model.safetensors") in fake_hub.lfs_objects
    card = repo.files["README.md"].decode()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["base_model"] == "tiny" and meta["library_name"] == "peft"
    assert meta["datasets"] == ["data"] and "slmlab" in meta["tags"]
    assert "3 rows" in card and "```yaml" in card and "Intended use" in card
    # The run's evaluation, base against tuned with the paired test.
    assert "valid JSON: base 0.04, tuned 0.96 (p = 1e-05, significant)" in card


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda hub: None, "refused your token (401)"),
        (lambda hub: hub.add_token(TOKEN, "someone-else"), "may not create or write"),
        (
            lambda hub: (hub.add_token(TOKEN, "owner"), hub.repos.__setitem__("owner/taken", None)),
            "already exists on the Hub (409)",
        ),
        (lambda hub: (hub.add_token(TOKEN, "owner"), hub.cut_commit()), "connection to the Hub"),
    ],
    ids=["401", "403", "409", "cut"],
)
def test_each_push_failure_gives_a_clear_message(
    fake_hub, adapter_export, user, run_queued, django_capture_on_commit_callbacks, setup, message
):
    setup(fake_hub)
    save_hub_token(user, TOKEN)
    job = push(adapter_export, "owner/taken", run_queued, django_capture_on_commit_callbacks)
    assert job.status == HubPush.Status.FAILED
    assert message in job.error
    assert TOKEN not in job.error
