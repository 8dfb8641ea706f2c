"""Deleting an account removes every row and every file the user owns; running work is
stopped first; another user's things are untouched."""

import threading
import time
from pathlib import Path

import pytest
from django.db import connection
from django.urls import reverse

from accounts.jobs.erase import erase
from accounts.models import User
from projects.models import Dataset, Project
from tests.factories import PASSWORD, make_base_model, make_project, make_run
from training.models import ChatExchange, Run, RunLog, RunMetric


def files_under(*roots) -> set[Path]:
    return {p for root in roots for p in Path(root).rglob("*") if p.is_file()}


def upload_dataset(client, project, name="data.jsonl"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    rows = b'{"instruction": "Say hi", "output": "hi"}\n' * 20
    client.post(
        reverse("projects:dataset_upload", args=[project.pk]),
        {"file": SimpleUploadedFile(name, rows, content_type="application/json")},
    )
    return Dataset.objects.get(project=project, name=name)


def fill_run_folder(run):
    folder = run.output_dir / "adapter"
    folder.mkdir(parents=True)
    (folder / "adapter_model.safetensors").write_bytes(b"w" * 1000)
    (run.output_dir / "checkpoints").mkdir()
    (run.output_dir / "checkpoints" / "state.json").write_text("{}")


@pytest.fixture
def lab_of_two(owner_client, other_client, user, other_user):
    base = make_base_model()
    things = {}
    for who, client in ((user, owner_client), (other_user, other_client)):
        project = make_project(owner=who)
        dataset = upload_dataset(client, project)
        done = make_run(project, dataset=dataset, base_model=base, status=Run.Status.COMPLETED)
        fill_run_folder(done)
        RunMetric.objects.create(
            run=done,
            step=1,
            epoch=1,
            loss=1.0,
            learning_rate=1e-4,
            tokens=1,
            tokens_per_second=1.0,
            elapsed_s=1.0,
        )
        RunLog.objects.create(run=done, line="run completed")
        ChatExchange.objects.create(run=done, owner=who, prompt="hello")
        queued = make_run(project, dataset=dataset, base_model=base)
        things[who.pk] = {"project": project, "dataset": dataset, "runs": [done, queued]}
    return things


def test_deleting_an_account_needs_the_password_and_keeps_everything_otherwise(
    owner_client, user, lab_of_two, broker
):
    response = owner_client.post(reverse("lab_account:delete"), {"password": "wrong"})
    assert response.status_code == 400
    assert "That is not your password" in response.content.decode()
    assert User.objects.filter(pk=user.pk, is_active=True).exists()
    assert Project.objects.filter(owner=user).count() == 1
    assert broker.queues.get("default") is None or broker.queues["default"].empty()


def test_it_removes_every_row_and_file_of_the_user_and_nothing_of_others(
    owner_client,
    user,
    other_user,
    lab_of_two,
    run_queued,
    django_capture_on_commit_callbacks,
    settings,
    tmp_path,
):
    mine_before = files_under(settings.MEDIA_ROOT, settings.RUNS_DIR)
    theirs = {
        p
        for p in mine_before
        if f"u{other_user.pk}" in str(p)
        or any(str(r.output_dir) in str(p) for r in lab_of_two[other_user.pk]["runs"])
    }
    assert theirs and mine_before - theirs  # both users have files

    # A trained tokenizer's files live in the data directory, per user.
    settings.DATA_DIR = tmp_path / "data"
    tokenizer_folder = Path(settings.DATA_DIR) / "tokenizers" / f"u{user.pk}" / "1"
    other_tokenizer = Path(settings.DATA_DIR) / "tokenizers" / f"u{other_user.pk}" / "2"
    for folder in (tokenizer_folder, other_tokenizer):
        folder.mkdir(parents=True)
        (folder / "tokenizer.json").write_text("{}")

    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(reverse("lab_account:delete"), {"password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == reverse("account_login")
    # Locked at once: the session is gone and the queued run is cancelled.
    assert owner_client.get(reverse("lab_account:account")).status_code == 302
    assert Run.objects.get(pk=lab_of_two[user.pk]["runs"][1].pk).status == Run.Status.CANCELLED

    with django_capture_on_commit_callbacks(execute=True):
        assert run_queued("default") == ["erase_account"]

    assert not User.objects.filter(pk=user.pk).exists()
    for model in (Project, Dataset, Run, ChatExchange):
        assert not model.objects.filter(owner_id=user.pk).exists(), model
    assert not RunMetric.objects.filter(run__owner_id=user.pk).exists()
    # Walking the data directory: only the other user's files are left, all of them.
    assert files_under(settings.MEDIA_ROOT, settings.RUNS_DIR) == theirs
    assert not any(Path(settings.MEDIA_ROOT).glob(f"*/u{user.pk}"))
    assert not tokenizer_folder.exists() and other_tokenizer.exists()
    for run in lab_of_two[user.pk]["runs"]:
        assert not run.output_dir.exists()
    # The other user is untouched.
    assert Run.objects.filter(owner=other_user).count() == 2


@pytest.mark.django_db(transaction=True)  # the worker's thread writes through its own connection
def test_the_erasure_waits_for_a_running_run_to_stop(user, lab_of_two):
    run = lab_of_two[user.pk]["runs"][1]
    Run.objects.filter(pk=run.pk).update(status=Run.Status.RUNNING, worker="w:1")
    User.objects.filter(pk=user.pk).update(is_active=False)
    stopped_at = []

    def worker_stops():  # as a training worker does when it sees cancel_requested
        time.sleep(0.6)
        Run.objects.filter(pk=run.pk).update(status=Run.Status.CANCELLED)
        stopped_at.append(time.monotonic())
        connection.close()

    thread = threading.Thread(target=worker_stops)
    thread.start()
    erase(user.pk, wait_s=30, poll_s=0.1)
    erased_at = time.monotonic()
    thread.join()
    assert stopped_at and erased_at >= stopped_at[0]
    assert not User.objects.filter(pk=user.pk).exists()


def test_a_duplicate_or_reactivated_erasure_does_nothing(user, lab_of_two):
    erase(user.pk)  # still active: an operator may have reactivated it
    assert User.objects.filter(pk=user.pk).exists()
    User.objects.filter(pk=user.pk).update(is_active=False)
    erase(user.pk, wait_s=1)
    erase(user.pk, wait_s=1)  # delivered twice
    assert not User.objects.filter(pk=user.pk).exists()


def test_deleting_needs_a_login_and_a_post(client, owner_client, db):
    response = client.post(reverse("lab_account:delete"), {"password": PASSWORD})
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert owner_client.get(reverse("lab_account:delete")).status_code == 405
