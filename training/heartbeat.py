"""Worker liveness: each worker process beats every few seconds; runs of a dead worker
are marked interrupted and resume elsewhere, so a crash never leaves a run "running"
forever. A worker asked to stop (SIGTERM) checkpoints its run first (see training.jobs.train).

The beat comes from a small process forked from each worker at boot, not from a
thread of the worker: a busy training step (torch threads on every core, the GIL, a
machine under load) starved the thread for longer than the stale window, and the
surviving worker of a crash was itself taken for dead. The beat process does nothing
but stamp ``last_seen`` and watch a pipe from its worker; the pipe reads end-of-file
the moment the worker dies (kill -9 included), and the beats stop with it.
"""

from __future__ import annotations

import gc
import logging
import os
import select
import shutil
import signal
import socket
import threading
import time
from datetime import timedelta

import dramatiq
import psutil
from django.conf import settings
from django.db import close_old_connections, connections, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy

from training.workers import SHUTTING_DOWN, worker_name

logger = logging.getLogger(__name__)


def device_facts() -> dict:
    """Every device of this worker (each CUDA GPU, Apple MPS, the CPU) and a summary of
    the one it trains on; memory in use from the GPU, or the machine's RAM."""
    from training.engine.devices import training_device
    from training.engine.train.hardware import all_devices, cpu_device

    try:
        devices = all_devices()
    except Exception:  # a broken CUDA install must not stop the heartbeat
        logger.exception("could not read the GPUs")
        devices = [cpu_device()]
    trains_on = training_device(devices)
    used = None
    if trains_on.kind == "cuda":
        try:
            import torch

            free, total = torch.cuda.mem_get_info(trains_on.index)
            used = (total - free) / 2**20
        except Exception:
            logger.exception("could not read the GPU's memory")
    if used is None:
        memory = psutil.virtual_memory()
        used = (memory.total - memory.available) / 2**20
    cpu = next(d for d in devices if d.kind == "cpu")
    return {
        "device": trains_on.name,
        "devices": [d.to_dict() for d in devices],
        "cpu_bf16": cpu.bf16,
        "memory_total_mb": trains_on.memory_mb,
        "memory_used_mb": used,
    }


def beat(name: str) -> None:
    """Register this process as worker ``name`` (or refresh it) with its device facts."""
    from training.models import Worker

    Worker.objects.update_or_create(
        name=name,
        defaults={
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "last_seen": timezone.now(),
            **device_facts(),
        },
    )


def report_device(name: str) -> None:
    """The device facts alone: ``last_seen`` is the beat process's to write."""
    from training.models import Worker

    Worker.objects.filter(name=name).update(**device_facts())


class BeatProcess:
    """A child process that stamps worker ``name``'s ``last_seen`` while the worker lives.

    Forked, so it costs no interpreter start and shares the worker's memory; it must
    not use the worker's database connections, so they are closed before the fork
    (Django opens new ones on demand in both processes).
    """

    def __init__(self, pid: int, pipe: int) -> None:
        self.pid = pid
        self.pipe = pipe  # the write end; closing it (or dying) stops the child

    @classmethod
    def start(cls, name: str) -> BeatProcess:
        connections.close_all()
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child
            os.close(write_end)
            code = 1
            try:
                _beat_while_open(name, read_end)
                code = 0
            finally:
                os._exit(code)  # never back into the worker's code (atexit, Dramatiq)
        os.close(read_end)
        return cls(pid, write_end)

    def alive(self) -> bool:
        try:
            pid, _ = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            return False
        return pid == 0

    def stop(self, timeout: float = 10.0) -> None:
        os.close(self.pipe)
        deadline = time.monotonic() + timeout
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)


def _beat_while_open(name: str, pipe: int) -> None:
    from training.models import Worker

    # Its lifetime is its worker's (the pipe), whatever signal the group gets: a Ctrl-C
    # or SIGTERM reaches the worker too, which keeps beating while it checkpoints.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    gc.freeze()  # leave the worker's objects alone: no copy-on-write of its whole heap
    while True:
        try:
            close_old_connections()
            Worker.objects.filter(name=name).update(last_seen=timezone.now())
        except Exception:
            logger.exception("heartbeat failed")
        readable, _, _ = select.select([pipe], [], [], settings.WORKER_HEARTBEAT_S)
        if readable and not os.read(pipe, 1):
            return  # end of file: the worker is gone or stopping


def _process_gone(worker) -> bool:
    """A worker on this host whose process is dead (or whose pid now belongs to another
    process) is known dead at once, without waiting for its heartbeat to go stale."""
    if worker.hostname != socket.gethostname() or worker.pid == os.getpid():
        return False
    try:
        process = psutil.Process(worker.pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return True
        return process.create_time() > worker.started.timestamp() + 1
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False


def gone_worker_names() -> list[str]:
    """Workers on this host whose process is gone: dead, however fresh their last beat."""
    from training.models import Worker

    here = Worker.objects.filter(hostname=socket.gethostname())
    return [w.name for w in here if _process_gone(w)]


def reap_stale_runs() -> list[int]:
    """Runs whose worker died go back to the waiting line as interrupted; returns their ids.

    A worker is dead when its heartbeat is older than SLMLAB_WORKER_STALE_AFTER_S, or at
    once when it ran on this host and its process is gone (kill -9, out-of-memory
    kill). The reaper never takes itself for dead (it is running this), and judges the
    others' beats in the same query that picks the runs, so a worker that registered
    and claimed a run meanwhile is seen alive. An interrupted run resumes from its last
    complete checkpoint on the next free worker; after SLMLAB_MAX_CRASH_RESUMES such
    resumes it fails instead of crashing workers in a loop.
    """
    from training import events, services
    from training.models import Run, Worker
    from training.retention import after_run_ended

    cutoff = timezone.now() - timedelta(seconds=settings.WORKER_STALE_AFTER_S)
    alive = Worker.objects.filter(last_seen__gte=cutoff).exclude(name__in=gone_worker_names())
    reaped = []
    with transaction.atomic():
        stale = (
            Run.objects.select_for_update()
            .filter(status=Run.Status.RUNNING)
            .exclude(worker__in=alive.values("name"))
            .exclude(worker=worker_name())
        )
        for run in stale:
            run.lose_worker()
            after_run_ended(run)  # failed past the crash limit: training is over
            events.publish_run(run.pk)
            services.release_slot(run.pk)
            reaped.append(run.pk)
    return reaped


WORKER_LOST = gettext_lazy(
    "The worker running this stopped unexpectedly (crash or restart); start it again."
)


def _pid_gone(name: str, since) -> bool:
    """Worker ``name`` (host:pid) ran on this host and its process is gone: dead, or its
    pid now belongs to a process started after ``since`` (when it claimed the job)."""
    host, _sep, pid = name.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        process = psutil.Process(int(pid))
        if process.status() == psutil.STATUS_ZOMBIE:
            return True
        return since is not None and process.create_time() > since.timestamp() + 1
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False


def _job_models() -> list:
    from django.apps import apps

    from slmlab.jobs import Job

    return [m for m in apps.get_models() if issubclass(m, Job)]


def _after_lost(job) -> None:
    """Tell the job's live page it failed, and remove what the job leaves half-written
    where it already has a place for it (an export's temporary folder)."""
    from designer import events as designer_events
    from evaluations import events as evaluation_events
    from exports import events as export_events
    from playground import relay
    from projects import events as project_events
    from training import events as run_events

    label = job._meta.label
    if label == "exports.Export":
        shutil.rmtree(job.temp_folder, ignore_errors=True)
        export_events.publish(job.run_id)
    elif label == "exports.HubPush":
        export_events.publish(job.export.run_id)
    elif label == "evaluations.Evaluation":
        evaluation_events.publish(job.pk)
        if job.run_id:
            evaluation_events.publish_run(job.run_id)
    elif label == "playground.Generation":
        relay.publish_error(job.pk, job.error)
    elif label == "designer.TrainedTokenizer":
        designer_events.publish_tokenizer(job.pk)
    elif label == "training.Generation":
        run_events.publish_generations(job.run_id)
    elif label == "training.ChatExchange":
        run_events.publish_chats(job.run_id)
    elif label == "projects.DatasetStats":
        project_events.publish_stats(job.dataset_id)
    elif label == "projects.DatasetCheck":
        project_events.publish_check(job.pk)
    elif label == "projects.DatasetImport":
        project_events.publish_import(job.pk)
    elif label == "projects.SyntheticGeneration":
        project_events.publish_generation(job.pk)
    elif label == "projects.Upload":
        project_events.publish_upload(job.pk)
    # projects.ModelDownload: its page polls; the status is right on the next one.


# A worker without a heartbeat row is judged by its queue stamps (slmlab.presence),
# which a thread of the worker writes, not a beat process: silent for this many stale
# windows, not one, before it is taken for dead, so a busy CPU job that starves the
# thread for a while is not failed.
SILENT_STAMP_WINDOWS = 3


def silent_unregistered_workers() -> set[str]:
    """Workers with no heartbeat row whose queue stamps stopped long ago: they died
    without saying goodbye (a worker that stops cleanly removes its stamps)."""
    from slmlab import presence
    from training.models import Worker

    client = presence.redis_client()
    if client is None:
        return set()
    try:
        stamps = presence.last_stamps(client)
    except Exception:
        logger.exception("could not read the workers' queue stamps")
        return set()
    limit = time.time() - SILENT_STAMP_WINDOWS * settings.WORKER_STALE_AFTER_S
    silent = {name for name, seen in stamps.items() if seen < limit}
    registered = set(Worker.objects.filter(name__in=silent).values_list("name", flat=True))
    return silent - registered


def reap_stale_jobs() -> list[tuple[str, int]]:
    """Running background jobs (slmlab.jobs.Job) whose worker died fail with a reason the
    owner can read; returns (model label, id) of each.

    A job's worker is dead when it is a registered worker (a training worker's
    heartbeat row) whose beat is older than SLMLAB_WORKER_STALE_AFTER_S; or, registered
    or not (the CPU worker never beats), when it ran on this host and its process is
    gone; or, unregistered, when its queue stamps in Redis are older than
    SILENT_STAMP_WINDOWS stale windows. A worker that is none of these (say, one that
    stopped cleanly and removed its stamps) cannot be judged and its jobs are left
    alone, as are jobs claimed by no worker and the reaper's own.
    """
    from slmlab.jobs import JobStatus
    from training.models import Worker

    cutoff = timezone.now() - timedelta(seconds=settings.WORKER_STALE_AFTER_S)
    stale = set(Worker.objects.filter(last_seen__lt=cutoff).values_list("name", flat=True))
    stale |= set(gone_worker_names())
    stale |= silent_unregistered_workers()
    me = worker_name()
    reaped = []
    for model in _job_models():
        running = model._default_manager.filter(status=JobStatus.RUNNING).exclude(worker="")
        for job in running.exclude(worker=me):
            if job.worker not in stale and not _pid_gone(job.worker, job.started):
                continue
            # Conditional on it still running: a job that ended meanwhile is left be.
            if not job.fail(str(WORKER_LOST)):
                continue
            try:
                _after_lost(job)
            except Exception:
                logger.exception("could not tell %s %s failed", model._meta.label, job.pk)
            reaped.append((model._meta.label, job.pk))
    return reaped


def _trains(worker) -> bool:
    # A CPU-only worker (statistics) trains nothing: not a training worker.
    whitelist = worker.consumer_whitelist
    return not whitelist or settings.QUEUE_GPU in whitelist


class WorkerHeartbeat(dramatiq.Middleware):
    """In every training worker process: registers it at boot and forks its beat process,
    then runs a thread that reports its device and reaps the runs of dead workers."""

    beats: BeatProcess | None = None

    def before_worker_boot(self, broker, worker) -> None:

        if not _trains(worker):
            return
        # Before any consumer starts: a run's worker has a row from the moment it claims it.
        beat(worker_name())
        self.beats = BeatProcess.start(worker_name())

    def after_worker_boot(self, broker, worker) -> None:

        if not _trains(worker):
            return
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=self._loop, args=(worker_name(),), daemon=True, name="slmlab-heartbeat"
        )
        self.thread.start()

    def before_worker_shutdown(self, broker, worker) -> None:
        # Dramatiq waits for the actor to return: training sees this, checkpoints and
        # hands the run back. The heartbeat goes on meanwhile, or the run would be
        # taken for a crash.
        SHUTTING_DOWN.set()

    def after_worker_shutdown(self, broker, worker) -> None:
        from training.models import Worker

        if hasattr(self, "stop"):
            self.stop.set()
            self.thread.join(timeout=30)
        if self.beats is not None:
            self.beats.stop()
            self.beats = None
        try:
            close_old_connections()
            Worker.objects.filter(name=worker_name()).delete()  # gone, not silent
        except Exception:
            logger.exception("could not unregister the worker")

    def _loop(self, name: str) -> None:
        warned = False
        while not self.stop.is_set():
            try:
                close_old_connections()
                if self.beats is not None and self.beats.alive():
                    report_device(name)
                else:
                    if self.beats is not None and not warned:
                        logger.error("the beat process died; beating from the worker thread")
                        warned = True
                    beat(name)  # a late beat from a busy worker beats none
                reaped = reap_stale_runs()
                if reaped:
                    logger.warning("marked runs %s interrupted (their worker went silent)", reaped)
                lost = reap_stale_jobs()
                if lost:
                    logger.warning("failed jobs %s (their worker went silent)", lost)
            except Exception:
                logger.exception("heartbeat failed")
            self.stop.wait(settings.WORKER_HEARTBEAT_S)
        connections.close_all()  # this thread's: no session outlives the worker
