"""Dramatiq actors of the exports app, on the CPU worker's queue (not the GPU's).

The web process imports this module to send messages and must not load torch, so each
actor imports its worker code when a worker runs it.
"""

import dramatiq
from django.conf import settings

HOUR_MS = 3_600_000


@dramatiq.actor(queue_name=settings.QUEUE_DEFAULT, time_limit=6 * HOUR_MS, max_retries=0)
def run_export(export_id: int) -> None:
    from exports.jobs.export import run_export as work

    work(export_id)


@dramatiq.actor(queue_name=settings.QUEUE_DEFAULT, time_limit=6 * HOUR_MS, max_retries=0)
def push_export(push_id: int) -> None:
    from exports.jobs.push import push

    push(push_id)
