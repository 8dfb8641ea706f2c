"""Dataset statistics on a worker: every row tokenized as training would see it."""

from __future__ import annotations

import logging

from projects import events
from projects.models import DatasetStats
from slmlab.jobs import JobStatus
from training.engine.data.stats import dataset_pairs, dataset_stats
from training.engine.models.store import cached_tokenizer

logger = logging.getLogger(__name__)


class Cancelled(Exception):
    """The statistics row went away (its dataset was deleted) while it was computed."""


def compute(stats_id: int) -> None:
    """Claim and compute one statistics row; safe to run twice (the second does nothing).

    A dataset deleted meanwhile takes its row with it: the next progress report finds
    no row, and the computation stops there without writing anything.
    """
    stats = DatasetStats.objects.select_related("dataset", "base_model").filter(pk=stats_id).first()
    if stats is None or not stats.claim():
        return
    dataset = stats.dataset
    events.publish_stats(dataset.pk)

    def progress(rows_done: int) -> None:
        if not stats.report(rows_done=rows_done):
            raise Cancelled
        events.publish_stats(dataset.pk)

    try:
        tokenizer = cached_tokenizer(stats.base_model.path)
        pairs = dataset_pairs(dataset.file.path, dataset.spec(), tokenizer)
        result = dataset_stats(pairs, stats.max_len, progress)
    except BaseException as exc:  # also the time limit: never leave it "running"
        if not DatasetStats.objects.filter(pk=stats_id, status=JobStatus.RUNNING).exists():
            # Deleted with its dataset (or cancelled) meanwhile: nothing to report to.
            logger.info("statistics %s: its dataset went away; stopped", stats_id)
        else:
            logger.exception("statistics %s failed", stats_id)
            stats.fail(f"{type(exc).__name__}: {exc}")
            events.publish_stats(dataset.pk)
        if not isinstance(exc, Exception):
            raise
        return
    stats.finish(result=result, rows_done=result["rows"])
    events.publish_stats(dataset.pk)
