"""The one pattern every background job follows (statistics, downloads, chat answers, …).

A job is a database row with a status. The view (through a ``services`` module) creates
the row and, after commit, sends an actor its id. The worker then *claims* it with a
conditional UPDATE, so of two deliveries of the same message only one does the work;
it reports progress on the row while it works, and ends it with ``finish`` or ``fail``,
both conditional on the job still being its own. Deleting or cancelling a job while a
worker holds it makes the worker's next progress report return False: it stops there,
quietly, without writing anything more.

Runs (``training.models.Run``) have richer states of their own (interrupted, timed out)
but move between them the same way, through :meth:`Transitions._move`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from training.workers import worker_name


class Transitions:
    """Conditional status changes: ``UPDATE … WHERE pk = … AND status IN (…)``."""

    def _move(self, from_statuses: Iterable[str], *, where: dict | None = None, **changes) -> bool:
        """Apply ``changes`` only if the row is still in one of ``from_statuses`` (and
        matches ``where``); True for the one caller whose update took effect."""
        rows = type(self)._default_manager.filter(  # type: ignore[attr-defined]
            pk=self.pk,  # type: ignore[attr-defined]
            status__in=list(from_statuses),
            **(where or {}),
        )
        if not rows.update(**changes):
            return False
        for name, value in changes.items():
            setattr(self, name, value)
        return True


class JobStatus(models.TextChoices):
    QUEUED = "queued", _("waiting for a worker")
    RUNNING = "running", _("running")
    DONE = "done", _("done")
    FAILED = "failed", _("failed")
    CANCELLED = "cancelled", _("cancelled")


class Job(Transitions, models.Model):
    """Abstract base of background jobs: status, error and timestamps, and their verbs."""

    Status = JobStatus
    FINAL = (JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED)

    status = models.CharField(
        max_length=20, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True
    )
    error = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    # The worker process (host:pid) that claimed it: its jobs fail when it dies
    # (training.heartbeat.reap_stale_jobs).
    worker = models.CharField(max_length=200, blank=True)

    class Meta:
        abstract = True

    @property
    def is_final(self) -> bool:
        return self.status in self.FINAL

    @property
    def is_active(self) -> bool:
        return not self.is_final

    def claim(self) -> bool:
        """queued → running for exactly one worker; a duplicate delivery gets False."""
        return self._move(
            [JobStatus.QUEUED],
            status=JobStatus.RUNNING,
            started=timezone.now(),
            worker=worker_name(),
        )

    def report(self, **progress: Any) -> bool:
        """Store progress fields while running; False when the job was cancelled or
        deleted meanwhile (the worker should stop)."""
        return self._move([JobStatus.RUNNING], **progress)

    def finish(self, **results: Any) -> bool:
        """running → done, with the results; False when the job is no longer running."""
        return self._move(
            [JobStatus.RUNNING], status=JobStatus.DONE, finished=timezone.now(), **results
        )

    def fail(self, error: str, **details: Any) -> bool:
        """queued or running → failed with a reason the owner can read."""
        return self._move(
            [JobStatus.QUEUED, JobStatus.RUNNING],
            status=JobStatus.FAILED,
            error=error[:4000],
            finished=timezone.now(),
            **details,
        )

    def cancel(self) -> bool:
        """queued or running → cancelled; a running worker notices at its next report."""
        return self._move(
            [JobStatus.QUEUED, JobStatus.RUNNING],
            status=JobStatus.CANCELLED,
            finished=timezone.now(),
        )

    def requeue(self) -> bool:
        """failed → queued, to try again."""
        return self._move(
            [JobStatus.FAILED],
            status=JobStatus.QUEUED,
            error="",
            started=None,
            finished=None,
            worker="",
        )
