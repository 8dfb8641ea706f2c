"""Datasets whose owner asked for their file to go once training is over."""

from __future__ import annotations

from projects.datasets import drop_file
from projects.models import Dataset
from slmlab.jobs import JobStatus
from training.models import Run

ACTIVE = (*Run.WAITING, Run.Status.RUNNING)


def release_dataset(dataset: Dataset) -> bool:
    """Delete the file of a dataset marked "delete after training" once it has been
    trained on and no run that uses it is still waiting or running, nor any evaluation
    of one of those runs or on the dataset itself."""
    if not dataset.delete_after_training or dataset.file_deleted_at is not None:
        return False
    runs = Run.objects.filter(dataset=dataset)
    if not runs.exists() or runs.filter(status__in=ACTIVE).exists():
        return False
    # Evaluations of its runs read its validation rows (``evaluations``, by the reverse
    # relation: this module does not import the app above it).
    pending = (JobStatus.QUEUED, JobStatus.RUNNING)
    if runs.filter(evaluations__status__in=pending).exists():
        return False
    # ... and so do evaluations of a store model on this dataset.
    if Dataset.objects.filter(pk=dataset.pk, evaluations__status__in=pending).exists():
        return False
    return drop_file(dataset)


def after_run_ended(run: Run) -> bool:
    """Call when a run reached a final state."""
    run.refresh_from_db(fields=["status"])
    if not run.is_final:
        return False
    return release_dataset(Dataset.objects.get(pk=run.dataset_id))
