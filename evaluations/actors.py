"""Dramatiq actors of evaluations; the worker code is imported when a worker runs one."""

import dramatiq
from django.conf import settings

HOUR_MS = 3_600_000


@dramatiq.actor(queue_name=settings.QUEUE_GPU, time_limit=6 * HOUR_MS, max_retries=0)
def run_evaluation(evaluation_id: int) -> None:
    from evaluations.jobs.evaluate import evaluate

    evaluate(evaluation_id)
