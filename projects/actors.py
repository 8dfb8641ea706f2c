"""Dramatiq actors of the projects app: CPU work, off the GPU queue, but for the
synthetic datasets a model writes (on the GPU queue, as evaluations).

The web process imports this module to send messages and must not load torch, so each
actor imports its worker code when a worker runs it.
"""

import dramatiq
from django.conf import settings

HOUR_MS = 3_600_000


@dramatiq.actor(queue_name=settings.QUEUE_DEFAULT, time_limit=2 * HOUR_MS, max_retries=0)
def compute_dataset_stats(stats_id: int) -> None:
    from projects.jobs.stats import compute

    compute(stats_id)


@dramatiq.actor(queue_name=settings.QUEUE_DEFAULT, time_limit=2 * HOUR_MS, max_retries=0)
def check_dataset(check_id: int) -> None:
    from projects.jobs.check import check

    check(check_id)


@dramatiq.actor(queue_name=settings.QUEUE_DEFAULT, time_limit=2 * HOUR_MS, max_retries=0)
def check_upload(upload_id: int) -> None:
    from projects.jobs.upload import check

    check(upload_id)


@dramatiq.actor(queue_name=settings.QUEUE_INTERACTIVE, time_limit=60_000, max_retries=0)
def preview_tokens(dataset_id: int, spec: dict, base_model_id: int, key: str) -> None:
    from projects.jobs.preview import preview

    preview(dataset_id, spec, base_model_id, key)


@dramatiq.actor(queue_name=settings.QUEUE_DEFAULT, time_limit=6 * HOUR_MS, max_retries=0)
def download_model(download_id: int) -> None:
    from projects.jobs.download import run_download

    run_download(download_id)


@dramatiq.actor(queue_name=settings.QUEUE_DEFAULT, time_limit=6 * HOUR_MS, max_retries=0)
def import_hub_dataset(import_id: int) -> None:
    from projects.jobs.hub_import import run_import

    run_import(import_id)


@dramatiq.actor(queue_name=settings.QUEUE_GPU, time_limit=6 * HOUR_MS, max_retries=0)
def generate_synthetic(generation_id: int) -> None:
    from projects.jobs.synthesize import run_generation

    run_generation(generation_id)
