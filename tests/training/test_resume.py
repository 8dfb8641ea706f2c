"""Interrupted runs resume by themselves; the crash limit, the takeover guard, checkpoints."""

import json
import os
import socket
import subprocess
import sys

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.factories import make_project, make_run, make_user
from training import services, workers
from training.documents import run_document
from training.engine.train import checkpoint
from training.engine.train.outcome import Outcome
from training.heartbeat import beat, reap_stale_runs
from training.jobs.train import RunReporter, engine_config
from training.models import Run, Worker
from training.scheduling import claim_next, queue_position

pytestmark = pytest.mark.django_db


def fake_checkpoint(run: Run, step: int) -> None:
    folder = checkpoint.root(run.output_dir) / f"step-{step:08d}"
    folder.mkdir(parents=True)
    (folder / "state.json").write_text("{}")
    (folder / checkpoint.MARKER).write_text(json.dumps({"files": {"state.json": 2}}))


def local_worker(pid: int) -> Worker:
    return Worker.objects.create(
        name=f"{socket.gethostname()}:{pid}",
        hostname=socket.gethostname(),
        pid=pid,
        device="CPU",
        last_seen=timezone.now(),
    )


def test_a_killed_worker_process_on_this_host_is_known_dead_at_once():
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    worker = local_worker(dead.pid)  # its heartbeat is fresh: only the pid tells
    run = make_run()
    Run.objects.filter(pk=run.pk).update(status="running", worker=worker.name, step=7)
    fake_checkpoint(run, 5)

    assert reap_stale_runs() == [run.pk]
    run.refresh_from_db()
    assert (run.status, run.crash_resumes) == ("interrupted", 1)
    assert run.error.endswith("stopped responding at step 7; resumes from checkpoint step 5")
    assert "interrupted: its worker" in run.logs.last().line


def test_a_live_worker_process_keeps_its_run():
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        worker = local_worker(alive.pid)
        run = make_run()
        Run.objects.filter(pk=run.pk).update(status="running", worker=worker.name)
        assert reap_stale_runs() == []
    finally:
        alive.kill()
        alive.wait()


def test_after_the_crash_limit_the_run_fails_with_a_reason(settings):
    settings.MAX_CRASH_RESUMES = 2
    run = make_run()
    Run.objects.filter(pk=run.pk).update(status="running", worker="gone:1", crash_resumes=2)

    assert reap_stale_runs() == [run.pk]
    run.refresh_from_db()
    assert run.status == "failed" and run.finished is not None
    assert "its workers died 3 times, more than the 2 crash resumes allowed" in run.error


def test_an_interrupted_run_is_claimed_before_other_waiting_runs():
    patient = make_run(name="queued first")
    interrupted = make_run(name="cut short")
    Run.objects.filter(pk=interrupted.pk).update(status="interrupted", crash_resumes=1)

    assert queue_position(Run.objects.get(pk=interrupted.pk))[0] == 1
    claimed = claim_next("w:1")
    assert claimed.pk == interrupted.pk and claimed.status == "running"
    assert claim_next("w:2").pk == patient.pk


def test_a_cancelled_interrupted_run_never_resumes():
    run = make_run()
    Run.objects.filter(pk=run.pk).update(status="interrupted")
    assert services.cancel_run(Run.objects.get(pk=run.pk))
    assert Run.objects.get(pk=run.pk).status == "cancelled"
    assert claim_next("w:1") is None


def test_the_reporter_tells_the_engine_why_to_stop():
    run = make_run()
    assert run.claim("w:1")
    reporter = RunReporter(run)
    assert reporter.should_stop() is None

    workers.SHUTTING_DOWN.set()
    try:
        assert reporter.should_stop() == Outcome.INTERRUPTED
    finally:
        workers.SHUTTING_DOWN.clear()

    Run.objects.filter(pk=run.pk).update(cancel_requested=True)
    reporter.last_cancel_check = 0
    assert reporter.should_stop() == Outcome.CANCELLED

    taken = RunReporter(Run.objects.get(pk=run.pk))
    Run.objects.filter(pk=run.pk).update(worker="w:2", cancel_requested=False)
    assert taken.should_stop() == Outcome.LOST  # reaped and resumed elsewhere: stop writing


def test_a_worker_that_lost_its_run_cannot_end_it():
    run = make_run()
    assert run.claim("w:1")
    Run.objects.filter(pk=run.pk).update(worker="w:2")  # resumed by another worker
    assert run.finish(Run.Status.COMPLETED) is False
    assert run.stop_to_resume("stopping") is False
    assert Run.objects.get(pk=run.pk).status == "running"


def test_new_runs_take_the_owners_time_limit():
    user = make_user(run_time_limit_hours=2)
    project = make_project(owner=user)
    source = make_run(project=project)
    run = services.start_run(
        owner=user,
        project=project,
        dataset=source.dataset,
        base_model=source.base_model,
        name="limited",
        config=source.config,
    )
    assert run.time_limit_s == 7200
    assert engine_config(run).time_limit_s == 7200.0
    assert run.retry().time_limit_s == 7200


def test_checkpoints_are_listed_and_deleted_by_their_owner_only(
    client, owner_client, other_client, user
):
    run = make_run(project=make_project(owner=user))
    Run.objects.filter(pk=run.pk).update(status="interrupted", step=4)
    fake_checkpoint(run, 2)
    fake_checkpoint(run, 4)
    page = owner_client.get(run.get_absolute_url()).content.decode()
    assert page.count('data-testid="checkpoint"') == 2
    assert run_document(run)["checkpoints"] == [2, 4]

    url = reverse("training:checkpoint_delete", args=[run.pk, 2])
    assert other_client.post(url).status_code == 404
    assert client.post(url).status_code == 302 and "login" in client.post(url)["Location"]
    assert [c.step for c in run.checkpoints] == [2, 4]

    response = owner_client.post(url, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert [c.step for c in run.checkpoints] == [4]
    assert owner_client.post(url).status_code == 404  # already gone


def test_checkpoints_of_a_training_run_stay(owner_client, user):
    run = make_run(project=make_project(owner=user))
    Run.objects.filter(pk=run.pk).update(status="running", worker="w:1")
    fake_checkpoint(run, 2)
    owner_client.post(reverse("training:checkpoint_delete", args=[run.pk, 2]))
    assert [c.step for c in run.checkpoints] == [2]


def test_a_beat_from_this_process_never_counts_it_dead():
    beat(f"{socket.gethostname()}:{os.getpid()}")
    run = make_run()
    Run.objects.filter(pk=run.pk).update(
        status="running", worker=f"{socket.gethostname()}:{os.getpid()}"
    )
    assert reap_stale_runs() == []
