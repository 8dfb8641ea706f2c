"""Pushes to the Hub with the user's own token, against the fake Hub (tests/fakehub.py):
the real huggingface_hub client creates the repository and commits through LFS."""

import pytest
import yaml
from django.conf import settings
from django.urls import reverse

from exports.models import Export, HubPush, HubToken
from exports.services import create_export, push_to_hub, save_hub_token
from tests.pretrained import pretrained_run
from training.engine.export import llama

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
    assert meta["library_name"] == "peft"
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


def test_a_push_after_a_lost_connection_goes_into_the_repository_it_created(
    fake_hub, adapter_export, user, run_queued, django_capture_on_commit_callbacks
):
    fake_hub.add_token(TOKEN, "owner")
    save_hub_token(user, TOKEN)
    fake_hub.cut_commit()
    lost = push(
        adapter_export, "owner/public-tuned", run_queued, django_capture_on_commit_callbacks, False
    )
    assert lost.status == HubPush.Status.FAILED and "Push again" in lost.error
    assert fake_hub.repos["owner/public-tuned"].files == {}  # created, nothing committed
    again = push(
        adapter_export, "owner/public-tuned", run_queued, django_capture_on_commit_callbacks, False
    )
    assert again.status == HubPush.Status.DONE, again.error
    assert fake_hub.private["owner/public-tuned"] is False  # public, as chosen
    assert "adapter_config.json" in fake_hub.repos["owner/public-tuned"].files


def make_push(run, kind="merged", **export_fields) -> HubPush:
    """A finished export's push row, for the card alone (nothing is uploaded)."""
    export = Export.objects.create(
        run=run, owner=run.owner, kind=kind, status=Export.Status.DONE, **export_fields
    )
    return HubPush.objects.create(export=export, owner=run.owner, repo_id="owner/card")


def test_the_model_card_describes_the_data_the_run_and_names_a_hub_base_by_its_id(
    finished_run, user
):
    from exports.jobs.push import card_facts
    from projects.models import BaseModel, ModelDownload
    from training.engine.export.card import model_card
    from training.models import RunMetric

    base = finished_run.base_model
    base.source, base.licence = BaseModel.Source.HUB, "mit"
    base.save()
    ModelDownload.objects.create(
        requested_by=user, repo_id="tiny-org/tiny-llama", name=base.name, base_model=base
    )
    for step, loss in enumerate([2.5, 1.25, 1.5], start=1):
        RunMetric.objects.create(
            run=finished_run,
            step=step,
            epoch=step / 3,
            loss=loss,
            learning_rate=1e-4,
            tokens=10,
            tokens_per_second=1.0,
            elapsed_s=step,
        )
    finished_run.base_eval_loss, finished_run.eval_loss = 2.0, 1.1
    finished_run.save()
    verification = {"kind": "merged", "passed": True, "prompts": []}
    facts = card_facts(make_push(finished_run, dtype="float16", verification=verification))
    card = model_card(facts)
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["base_model"] == "tiny-org/tiny-llama" and meta["license"] == "mit"
    assert meta["library_name"] == "transformers" and meta["datasets"] == ["data"]
    assert {"slmlab", "lora"} <= set(meta["tags"])
    assert "- Dataset: data (3 rows, alpaca)" in card
    assert "- Prompt template: " in card
    assert "3 steps; training loss 2.5000 at the first step, 1.2500 at its lowest" in card
    assert "Validation loss: 1.1000 (base model: 2.0000)." in card
    assert "quantization: 4bit" in card  # the full run configuration
    assert "answer the lab's check prompts exactly like the adapter" in card
    assert "## Intended use" in card


def test_a_card_of_a_model_not_from_the_hub_names_it_only_in_the_text(finished_run):
    from exports.jobs.push import card_facts
    from training.engine.export.card import model_card

    verification = {"kind": "gguf", "gguf_type": "q8_0", "token_agreement": 0.94, "mean_kl": 0.005}
    push = make_push(finished_run, kind="gguf", quant="q8_0", verification=verification)
    card = model_card(card_facts(push))
    meta = yaml.safe_load(card.split("---")[1])
    assert "base_model" not in meta  # the Hub refuses a base_model that is not a model id
    assert meta["license"] == "other" and meta["library_name"] == "gguf"
    assert "gguf" in meta["tags"]
    assert "A GGUF Q8_0 of `tiny` fine-tuned with LoRA" in card
    assert "Loaded in llama.cpp (Q8_0): next-token agreement with the merged model 94.0%" in card


def test_the_token_is_encrypted_with_the_key_from_the_environment(user, settings):
    from cryptography.fernet import Fernet

    from exports import secrets

    key = Fernet.generate_key().decode()
    settings.SECRET_ENCRYPTION_KEY = key
    stored = save_hub_token(user, TOKEN)
    assert Fernet(key.encode()).decrypt(bytes(stored.encrypted)).decode() == TOKEN
    settings.SECRET_ENCRYPTION_KEY = Fernet.generate_key().decode()  # the key changed
    with pytest.raises(secrets.SecretUnreadable, match="enter it again"):
        secrets.decrypt(stored.encrypted)


def test_a_push_to_a_badly_named_repository_is_refused_and_creates_nothing(
    owner_client, adapter_export, user, htmx_headers
):
    save_hub_token(user, TOKEN)
    for bad in ("no-namespace", "owner/with space", "a/b/c", "owner/"):
        page = owner_client.post(
            reverse("exports:push", args=[adapter_export.pk]), {"repo_id": bad}, **htmx_headers
        )
        assert "named like your-name/model-name" in page.content.decode(), bad
    assert not HubPush.objects.exists()


def export_of(run, kind, run_queued, capture, **fields) -> Export:
    with capture(execute=True):
        export = create_export(run, kind, **fields)
    run_queued(settings.QUEUE_DEFAULT)
    export.refresh_from_db()
    assert export.status == Export.Status.DONE, export.error
    return export


def assert_pushed(fake_hub, export, repo_id, weights) -> str:
    """Every file of ``export`` is in the repository as written, ``weights`` through LFS;
    returns the model card."""
    repo = fake_hub.repos[repo_id]
    local = {p.relative_to(export.folder).as_posix(): p for p in export.folder.rglob("*")}
    assert set(repo.files) == {"README.md"} | {n for n, p in local.items() if p.is_file()}
    for name, path in local.items():
        if path.is_file():
            assert repo.files[name] == path.read_bytes(), name
    assert repo.sha256(weights) in fake_hub.lfs_objects
    assert fake_hub.lfs_objects[repo.sha256(weights)] == repo.files[weights]
    return repo.files["README.md"].decode()


def test_a_merged_export_is_pushed_with_its_weights_through_lfs_and_a_model_card(
    fake_hub, finished_run, user, broker, run_queued, django_capture_on_commit_callbacks
):
    fake_hub.add_token(TOKEN, "owner")
    save_hub_token(user, TOKEN)
    capture = django_capture_on_commit_callbacks
    export = export_of(finished_run, "merged", run_queued, capture, dtype="float32")
    job = push(export, "owner/tiny-merged", run_queued, capture)
    assert job.status == HubPush.Status.DONE, job.error
    card = assert_pushed(fake_hub, export, "owner/tiny-merged", "model.safetensors")
    assert {"config.json", "tokenizer.json"} <= set(fake_hub.repos["owner/tiny-merged"].files)
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["library_name"] == "transformers" and "slmlab" in meta["tags"]
    assert "answer the lab's check prompts exactly like the adapter" in card
    assert "## Intended use" in card


@pytest.mark.skipif(not llama.available(), reason="llama-cpp-python not installed")
def test_a_gguf_export_is_pushed_with_its_modelfile_the_gguf_through_lfs_and_a_model_card(
    fake_hub, user, broker, run_queued, django_capture_on_commit_callbacks
):
    fake_hub.add_token(TOKEN, "owner")
    save_hub_token(user, TOKEN)
    capture = django_capture_on_commit_callbacks
    export = export_of(pretrained_run(user), "gguf", run_queued, capture, quant="f16")
    job = push(export, "owner/tiny-gguf", run_queued, capture, private=False)
    assert job.status == HubPush.Status.DONE, job.error
    assert fake_hub.private["owner/tiny-gguf"] is False
    card = assert_pushed(fake_hub, export, "owner/tiny-gguf", export.gguf_path.name)
    assert "Modelfile" in fake_hub.repos["owner/tiny-gguf"].files
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["library_name"] == "gguf" and "gguf" in meta["tags"]
    assert "Loaded in llama.cpp (F16): next-token agreement with the merged model" in card
