"""Worker liveness: each worker process beats every few seconds; runs of a silent worker
are marked interrupted, so a crashed worker never leaves a run "running" forever."""

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
    memory = psutil.virtual_memory()
    return {
        "device": f"CPU ({os.cpu_count()} cores)",
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


def reap_stale_runs() -> list[int]:
    """Mark running runs whose worker went silent as interrupted; returns their ids."""
    from training import events, services
    from training.models import Run, RunLog, Worker

    cutoff = timezone.now() - timedelta(seconds=settings.WORKER_STALE_AFTER_S)
    alive = Worker.objects.filter(last_seen__gte=cutoff).values_list("name", flat=True)
    reaped = []
    with transaction.atomic():
        stale = (
            Run.objects.select_for_update()
            .filter(status=Run.Status.RUNNING)
            .exclude(worker__in=list(alive))
        )
        for run in stale:
            run.status = Run.Status.INTERRUPTED
            run.error = f"worker {run.worker} stopped responding"
            run.finished = timezone.now()
            run.save(update_fields=["status", "error", "finished"])
            RunLog.objects.create(run=run, line=f"interrupted: {run.error}")
            events.publish_run(run.pk)
            services.release_slot(run.pk)
            reaped.append(run.pk)
    return reaped


class WorkerHeartbeat(dramatiq.Middleware):
    """Starts the heartbeat thread in every worker process."""

    def after_worker_boot(self, broker, worker) -> None:
        from training.runner import worker_name

        if worker.consumer_whitelist and settings.QUEUE_GPU not in worker.consumer_whitelist:
            return  # a CPU-only worker (statistics) trains nothing: not a training worker

        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=self._loop, args=(worker_name(),), daemon=True, name="slmlab-heartbeat"
        )
        self.thread.start()

    def before_worker_shutdown(self, broker, worker) -> None:
        if hasattr(self, "stop"):
            self.stop.set()

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
