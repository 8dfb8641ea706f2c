from datetime import timedelta

import dramatiq
import pytest
from django.urls import reverse
from django.utils import timezone

from tests.factories import make_run, make_user
from training.heartbeat import beat, reap_stale_runs
from training.models import Run, RunMetric, Worker

pytestmark = pytest.mark.django_db


def test_a_heartbeat_registers_the_worker_with_its_device_and_memory():
    beat("host-a:1")
    worker = Worker.objects.get(name="host-a:1")
    assert worker.device.startswith("CPU") or worker.device
    assert worker.memory_total_mb > worker.memory_used_mb > 0
    assert worker.is_alive


def test_a_heartbeat_lists_every_device_the_worker_has():
    import torch

    beat("host-a:1")
    kinds = [d["kind"] for d in Worker.objects.get(name="host-a:1").devices]
    assert kinds[-1] == "cpu"  # always there, last
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    assert kinds.count("cuda") == gpus
    mps = hasattr(torch.backends, "mps") and torch.backends.mps.is_available()
    assert ("mps" in kinds) == mps
    for device in Worker.objects.get(name="host-a:1").devices:
        assert device["name"] and device["memory_mb"] > 0
        if device["kind"] == "cuda":
            assert device["capability"].count(".") == 1
    if not gpus:
        print("no CUDA GPU here: the per-GPU fields are checked with fake reports only")


def test_a_run_of_a_silent_worker_is_marked_interrupted(settings):
    beat("alive:1")
    beat("dead:2")
    Worker.objects.filter(name="dead:2").update(
        last_seen=timezone.now() - timedelta(seconds=settings.WORKER_STALE_AFTER_S + 5)
    )
    healthy, orphan, queued = make_run(), make_run(), make_run()
    Run.objects.filter(pk=healthy.pk).update(status="running", worker="alive:1")
    Run.objects.filter(pk=orphan.pk).update(status="running", worker="dead:2")

    assert reap_stale_runs() == [orphan.pk]
    orphan.refresh_from_db()
    assert orphan.status == Run.Status.INTERRUPTED
    assert orphan.crash_resumes == 1
    assert "its worker stopped responding at step 0; resumes from the start" in orphan.error
    assert Run.objects.get(pk=healthy.pk).status == Run.Status.RUNNING
    assert Run.objects.get(pk=queued.pk).status == Run.Status.QUEUED


def test_a_run_whose_worker_never_beat_is_interrupted_too():
    run = make_run()
    Run.objects.filter(pk=run.pk).update(status="running", worker="vanished:9")
    assert reap_stale_runs() == [run.pk]


def test_an_operator_requeue_resets_the_crash_count(django_capture_on_commit_callbacks):
    from training import services

    broker = dramatiq.get_broker()
    broker.flush_all()
    run = make_run()
    Run.objects.filter(pk=run.pk).update(
        status="interrupted", step=3, loss=1.0, worker="x:1", crash_resumes=3, error="crashed"
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert services.requeue_run(run) == run
    run.refresh_from_db()
    assert (run.status, run.crash_resumes, run.error) == ("queued", 0, "")
    assert broker.queues["gpu"].qsize() == 1
    assert services.requeue_run(run) is None  # already queued


def test_rewinding_drops_the_steps_after_the_checkpoint():
    run = make_run()
    for step in (1, 2, 3, 4):
        RunMetric.objects.create(
            run=run,
            step=step,
            epoch=step / 4,
            loss=5 - step,
            learning_rate=0,
            tokens=10,
            tokens_per_second=1,
            elapsed_s=step,
        )
    Run.objects.filter(pk=run.pk).update(step=4, loss=1.0, train_tokens=40)
    run.refresh_from_db()

    run.rewind_to(2)
    run.refresh_from_db()
    assert list(run.metrics.values_list("step", flat=True)) == [1, 2]
    assert (run.step, run.loss, run.epoch, run.train_tokens) == (2, 3.0, 0.5, 20)
    run.rewind_to(0)
    run.refresh_from_db()
    assert (run.step, run.loss, run.train_tokens) == (0, None, 0)
    assert not run.metrics.exists()


def test_requeueing_an_ended_run_makes_a_retry_and_leaves_it_alone():
    from training import services

    run = make_run(name="first try")
    Run.objects.filter(pk=run.pk).update(status="failed", error="out of memory")
    run.refresh_from_db()
    retry = services.requeue_run(run)
    assert retry.pk != run.pk and retry.name == "first try (retry)"
    assert retry.status == "queued" and retry.config == run.config
    run.refresh_from_db()
    assert (run.status, run.error) == ("failed", "out of memory")


def test_operators_cancel_and_requeue_from_the_admin(client):
    operator = make_user(is_staff=True, is_superuser=True)
    client.force_login(operator)
    running, failed = make_run(), make_run()
    Run.objects.filter(pk=running.pk).update(status="running")
    Run.objects.filter(pk=failed.pk).update(status="failed", error="boom")
    url = reverse("admin:training_run_changelist")
    client.post(url, {"action": "cancel_runs", "_selected_action": [running.pk]})
    client.post(url, {"action": "requeue_runs", "_selected_action": [failed.pk]})
    assert Run.objects.get(pk=running.pk).cancel_requested is True
    assert Run.objects.get(pk=failed.pk).status == Run.Status.FAILED
    assert Run.objects.filter(name__endswith="(retry)", status="queued").count() == 1
    beat("host-b:2")
    page = client.get(reverse("admin:training_worker_changelist")).content.decode()
    assert "host-b:2" in page


def test_the_reaper_never_takes_itself_for_dead(settings):
    from training.workers import worker_name

    beat(worker_name())
    Worker.objects.filter(name=worker_name()).update(
        last_seen=timezone.now() - timedelta(seconds=settings.WORKER_STALE_AFTER_S + 5)
    )
    run = make_run()
    Run.objects.filter(pk=run.pk).update(status="running", worker=worker_name())
    # Its own beat is late (say the reaper was starved for a while): it is still alive.
    assert reap_stale_runs() == []
    assert Run.objects.get(pk=run.pk).status == Run.Status.RUNNING
