"""Workflows of the projects app that enqueue work. Enqueues happen after commit, only here."""

from __future__ import annotations

from django.db import transaction

from projects.models import BaseModel, Dataset, DatasetStats


def request_stats(
    dataset: Dataset, base_model: BaseModel | None = None, max_len: int | None = None
) -> DatasetStats | None:
    """Statistics of ``dataset`` for this model and max length, queued unless already there.

    A failed computation is queued again. None when the lab has no base model yet.
    """
    from projects.actors import compute_dataset_stats
    from projects.stats import default_max_len

    base_model = base_model or BaseModel.objects.first()
    if base_model is None:
        return None
    with transaction.atomic():
        stats, created = DatasetStats.objects.get_or_create(
            dataset=dataset, base_model=base_model, max_len=max_len or default_max_len()
        )
        if not created and stats.status == DatasetStats.Status.FAILED:
            stats.status = DatasetStats.Status.PENDING
            stats.error = ""
            stats.save(update_fields=["status", "error", "updated"])
            created = True
        if created:
            transaction.on_commit(lambda: compute_dataset_stats.send(stats.pk))
    return stats
