"""Dramatiq actors of the projects app: light CPU work, off the GPU queue."""

import dramatiq
from django.conf import settings

HOUR_MS = 3_600_000


@dramatiq.actor(queue_name=settings.QUEUE_DEFAULT, time_limit=2 * HOUR_MS, max_retries=0)
def compute_dataset_stats(stats_id: int) -> None:
    from projects.stats import compute

    compute(stats_id)


@dramatiq.actor(queue_name=settings.QUEUE_DEFAULT, time_limit=6 * HOUR_MS, max_retries=0)
def download_model(download_id: int) -> None:
    from projects.downloads import run_download

    run_download(download_id)
