"""Worker liveness: each worker process beats every few seconds; runs of a dead worker
are marked interrupted and resume elsewhere, so a crash never leaves a run "running"
forever. A worker asked to stop (SIGTERM) checkpoints its run first (see runner)."""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import timedelta

import dramatiq
import psutil
from django.conf import settings
from django.db import close_old_connections, transaction
from django.utils import timezone

logger = logging.getLogger(__name__)


def device_facts() -> dict:
    try:
        import torch

        if torch.cuda.is_available():
            free, total = torch.cuda.mem_get_info()
            return {
                "device": torch.cuda.get_device_name(0),
                "memory_total_mb": total / 2**20,
                "memory_used_mb": (total - free) / 2**20,
            }
    except Exception:  # a broken CUDA install must not stop the heartbeat
        logger.exception("could not read the GPU")
    from training.engine.train.speed import cpu_has_fast_bf16

    memory = psutil.virtual_memory()
    return {
        "device": f"CPU ({os.cpu_count()} cores)",
        "cpu_bf16": cpu_has_fast_bf16(),
        "memory_total_mb": memory.total / 2**20,
        "memory_used_mb": (memory.total - memory.available) / 2**20,
    }


def beat(name: str) -> None:
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


def live_worker_names() -> list[str]:
    from training.models import Worker

    cutoff = timezone.now() - timedelta(seconds=settings.WORKER_STALE_AFTER_S)
    return [w.name for w in Worker.objects.filter(last_seen__gte=cutoff) if not _process_gone(w)]


def reap_stale_runs() -> list[int]:
    """Runs whose worker died go back to the waiting line as interrupted; returns their ids.

    A worker is dead when its heartbeat is older than SLMLAB_WORKER_STALE_AFTER_S, or at
    once when it ran on this host and its process is gone (kill -9, out-of-memory
    kill). An interrupted run resumes from its last complete checkpoint on the next
    free worker; after SLMLAB_MAX_CRASH_RESUMES such resumes it fails instead of
    crashing workers in a loop.
    """
    from training import events, services
    from training.engine.train import checkpoint
    from training.models import Run, RunLog

    alive = live_worker_names()
    reaped = []
    with transaction.atomic():
        stale = (
            Run.objects.select_for_update()
            .filter(status=Run.Status.RUNNING)
            .exclude(worker__in=alive)
        )
        for run in stale:
            saved = checkpoint.latest(run.output_dir)
            resume_at = f"checkpoint step {saved.step}" if saved else "the start (no checkpoint)"
            lost = f"worker {run.worker} stopped responding at step {run.step}"
            if run.crash_resumes >= settings.MAX_CRASH_RESUMES:
                run.status = Run.Status.FAILED
                run.error = (
                    f"{lost}; its workers died {run.crash_resumes + 1} times, more than the "
                    f"{settings.MAX_CRASH_RESUMES} crash resumes allowed"
                )
                run.finished = timezone.now()
            else:
                run.status = Run.Status.INTERRUPTED
                run.crash_resumes += 1
                run.error = f"{lost}; resumes from {resume_at}"
            run.save(update_fields=["status", "error", "finished", "crash_resumes"])
            RunLog.objects.create(run=run, line=f"interrupted: {run.error}")
            events.publish_run(run.pk)
            services.release_slot(run.pk)
            reaped.append(run.pk)
    return reaped


class WorkerHeartbeat(dramatiq.Middleware):
    """Starts the heartbeat thread in every worker process."""

    def after_worker_boot(self, broker, worker) -> None:
        from training.jobs.train import worker_name

        if worker.consumer_whitelist and settings.QUEUE_GPU not in worker.consumer_whitelist:
            return  # a CPU-only worker (statistics) trains nothing: not a training worker

        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=self._loop, args=(worker_name(),), daemon=True, name="slmlab-heartbeat"
        )
        self.thread.start()

    def before_worker_shutdown(self, broker, worker) -> None:
        from training.jobs import train as runner

        # Dramatiq waits for the actor to return: training sees this, checkpoints and
        # hands the run back. The heartbeat goes on meanwhile, or the run would be
        # taken for a crash.
        runner.SHUTTING_DOWN.set()

    def after_worker_shutdown(self, broker, worker) -> None:
        from training.jobs.train import worker_name
        from training.models import Worker

        if hasattr(self, "stop"):
            self.stop.set()
            self.thread.join(timeout=30)
        try:
            close_old_connections()
            Worker.objects.filter(name=worker_name()).delete()  # gone, not silent
        except Exception:
            logger.exception("could not unregister the worker")

    def _loop(self, name: str) -> None:
        while not self.stop.is_set():
            try:
                close_old_connections()
                beat(name)
                reaped = reap_stale_runs()
                if reaped:
                    logger.warning("marked runs %s interrupted (their worker went silent)", reaped)
            except Exception:
                logger.exception("heartbeat failed")
            self.stop.wait(settings.WORKER_HEARTBEAT_S)
