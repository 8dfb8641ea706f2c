"""New dataset settings checked against every row on a worker, then saved."""

from __future__ import annotations

import logging
import time

from projects import events, versions
from projects.jobs.stats import compute
from projects.models import BaseModel, Dataset, DatasetCheck, DatasetStats
from slmlab.jobs import JobStatus
from training.engine.config import DEFAULT_MAX_SEQ_LEN
from training.engine.data.records import DatasetError

logger = logging.getLogger(__name__)
PUSH_EVERY_S = 1.0


class Cancelled(Exception):
    """The check was cancelled, or its dataset deleted, while it ran."""


def check(check_id: int) -> None:
    """Claim one check, read every row with its settings and save them (in place, or as
    a new version when a run used the dataset); a second delivery does nothing."""
    job = DatasetCheck.objects.select_related("dataset__project").filter(pk=check_id).first()
    if job is None or not job.claim():
        return
    events.publish_check(job.pk)
    last_push = time.monotonic()

    def progress(rows: int) -> None:
        nonlocal last_push
        if not job.report(rows_done=rows):
            raise Cancelled
        if time.monotonic() - last_push >= PUSH_EVERY_S:
            last_push = time.monotonic()
            events.publish_check(job.pk)

    try:
        target = versions.change_settings(job.dataset, job.data_spec(), on_progress=progress)
    except DatasetError as exc:
        problems = [str(p) for p in exc.problems]
        if exc.total > len(problems):
            problems.append(f"… and {exc.total - len(problems)} more problems")
        job.fail("some rows do not fit these settings", problems=problems)
    except Exception as exc:
        if not DatasetCheck.objects.filter(pk=check_id, status=JobStatus.RUNNING).exists():
            # Cancelled, or deleted with its dataset, meanwhile: nothing to report to.
            logger.info("dataset check %s: cancelled or its dataset deleted; stopped", check_id)
            return
        logger.exception("dataset check %s failed", check_id)
        job.fail(f"{type(exc).__name__}: {exc}")
    else:
        job.finish(result=target, rows_done=target.row_count)
    events.publish_check(job.pk)
    if job.status == JobStatus.DONE:
        compute_new_statistics(target)


def compute_new_statistics(dataset: Dataset) -> None:
    """The statistics of the saved settings, here and now: the page that opened the saved
    dataset follows them live."""
    model = BaseModel.objects.first()
    if model is not None:
        stats, wanted = DatasetStats.wanted(dataset, model, DEFAULT_MAX_SEQ_LEN)
        if wanted:
            compute(stats.pk)
