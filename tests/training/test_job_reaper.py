"""Background jobs (slmlab.jobs.Job) of a dead worker fail with a reason instead of
staying "running" for ever; those of a live worker, or of one that cannot be judged,
are left alone."""

import socket
import subprocess
import sys
import time
from datetime import timedelta

import dramatiq
import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.utils import timezone
from dramatiq.brokers.redis import RedisBroker

from exports import events as export_events
from exports.models import Export
from slmlab import lab, presence
from tests.factories import make_run
from training.heartbeat import WORKER_LOST, reap_stale_jobs
from training.models import Worker
from training.workers import worker_name

pytestmark = pytest.mark.django_db
HOST = socket.gethostname()


def register(name: str, *, stale: bool = False, settings=None) -> None:
    host, _, pid = name.rpartition(":")
    seen = timezone.now()
    if stale:
        seen -= timedelta(seconds=settings.WORKER_STALE_AFTER_S + 5)
    Worker.objects.create(name=name, hostname=host, pid=int(pid), device="CPU", last_seen=seen)


def running_export(run, worker: str, **fields) -> Export:
    return Export.objects.create(
        run=run,
        owner=run.owner,
        kind="adapter",
        status="running",
        worker=worker,
        started=fields.pop("started", timezone.now()),
        **fields,
    )


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.fixture
def sleeper():
    process = subprocess.Popen(["sleep", "60"])
    yield process
    process.kill()
    process.wait()


def test_a_claim_records_the_worker_process_and_a_requeue_forgets_it():
    run = make_run()
    export = Export.objects.create(run=run, owner=run.owner, kind="adapter")
    assert export.claim()
    assert Export.objects.get(pk=export.pk).worker == worker_name()
    assert export.fail("x") and export.requeue()
    assert Export.objects.get(pk=export.pk).worker == ""


def test_a_job_of_a_worker_whose_heartbeat_went_stale_fails_with_the_reason(
    settings, django_capture_on_commit_callbacks
):
    register("gpu-host-b:41", stale=True, settings=settings)
    run = make_run()
    export = running_export(run, "gpu-host-b:41")
    export.temp_folder.mkdir(parents=True)
    (export.temp_folder / "model.safetensors").write_bytes(b"half")

    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(export_events.exports_group(run.pk), channel)
    with django_capture_on_commit_callbacks(execute=True):
        assert reap_stale_jobs() == [("exports.Export", export.pk)]
    export.refresh_from_db()
    assert export.status == "failed"
    assert export.error == str(WORKER_LOST)
    assert "stopped unexpectedly (crash or restart); start it again" in export.error
    assert not export.temp_folder.exists()  # the half-written files are gone
    pushed = async_to_sync(layer.receive)(channel)  # the live page is told
    assert "stopped unexpectedly" in pushed["html"]
    assert reap_stale_jobs() == []  # once


def test_a_job_of_a_process_gone_on_this_host_fails_at_once_registered_or_not():
    # The CPU worker never beats: its jobs are judged by their process alone.
    run = make_run()
    unregistered = running_export(run, f"{HOST}:{dead_pid()}")
    register(f"{HOST}:{dead_pid()}")  # a fresh beat, but its process is dead
    registered = running_export(run, Worker.objects.get().name)
    assert sorted(reap_stale_jobs()) == sorted(
        [("exports.Export", unregistered.pk), ("exports.Export", registered.pk)]
    )
    assert set(Export.objects.values_list("status", flat=True)) == {"failed"}


def test_a_pid_taken_by_a_process_started_after_the_claim_is_not_the_claiming_worker(sleeper):
    run = make_run()
    reused = running_export(
        run, f"{HOST}:{sleeper.pid}", started=timezone.now() - timedelta(hours=1)
    )
    assert reap_stale_jobs() == [("exports.Export", reused.pk)]


def test_jobs_of_live_or_unjudgeable_workers_queued_jobs_and_the_reapers_own_are_left_alone(
    settings, sleeper
):
    register("gpu-host-b:41", settings=settings)  # beating
    run = make_run()
    kept = [
        running_export(run, "gpu-host-b:41"),
        running_export(run, f"{HOST}:{sleeper.pid}"),  # a live process here, unregistered
        running_export(run, "cpu-host-c:7"),  # unregistered on another host: unknown
        running_export(run, worker_name()),  # the reaper's own
        running_export(run, ""),  # claimed before workers were recorded
        Export.objects.create(run=run, owner=run.owner, kind="adapter", worker="gone:1"),
    ]
    Worker.objects.create(name="gone:1", hostname="gone", pid=1, device="CPU")
    Worker.objects.filter(name="gone:1").update(last_seen=timezone.now() - timedelta(days=1))
    assert reap_stale_jobs() == []
    for export, status in zip(kept, ["running"] * 5 + ["queued"], strict=True):
        export.refresh_from_db()
        assert (export.status, export.error) == (status, "")


def test_every_kind_of_job_is_reaped(settings):
    from evaluations.models import Evaluation
    from playground.models import Generation
    from projects.models import DatasetStats
    from slmlab.jobs import Job
    from training.heartbeat import _job_models

    labels = {m._meta.label for m in _job_models()}
    assert {"exports.Export", "evaluations.Evaluation", "playground.Generation"} <= labels
    assert {"projects.DatasetImport", "projects.SyntheticGeneration"} <= labels
    assert all(issubclass(m, Job) for m in (Evaluation, Generation, DatasetStats))
    run = make_run()
    register("gpu-host-b:41", stale=True, settings=settings)
    stats = DatasetStats.objects.create(
        dataset=run.dataset,
        base_model=run.base_model,
        max_len=64,
        status="running",
        worker="gpu-host-b:41",
    )
    assert reap_stale_jobs() == [("projects.DatasetStats", stats.pk)]
    stats.refresh_from_db()
    assert stats.status == "failed" and "stopped unexpectedly" in stats.error


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    proc, url = lab.start_embedded_redis(tmp_path_factory.mktemp("redis"))
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def redis_broker(redis_url):
    previous = dramatiq.get_broker()
    broker = RedisBroker(url=redis_url)
    broker.client.flushall()
    dramatiq.set_broker(broker)
    yield broker
    dramatiq.set_broker(previous)


def test_an_unregistered_worker_elsewhere_is_dead_once_its_queue_stamps_stopped_long_ago(
    redis_broker, settings
):
    # The CPU worker in its own container: no heartbeat row, another host, only the
    # queue stamps its presence thread writes, judged with a wide margin.
    client, window = redis_broker.client, settings.WORKER_STALE_AFTER_S
    now = time.time()
    presence.stamp(client, "cpu-host-c:7", ["default", "interactive"], now=now - 4 * window)
    presence.stamp(client, "cpu-host-c:8", ["default"], now=now - 2 * window)  # a slow beat
    presence.stamp(client, "cpu-host-c:8", ["interactive"], now=now - 5 * window)
    presence.stamp(client, "gpu-host-b:41", ["gpu"], now=now - 4 * window)
    register("gpu-host-b:41", settings=settings)  # a fresh heartbeat row wins
    run = make_run()
    dead = running_export(run, "cpu-host-c:7")
    kept = [running_export(run, name) for name in ("cpu-host-c:8", "gpu-host-b:41")]
    assert reap_stale_jobs() == [("exports.Export", dead.pk)]
    assert [Export.objects.get(pk=e.pk).status for e in kept] == ["running", "running"]
