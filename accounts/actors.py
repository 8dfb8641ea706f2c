"""Dramatiq actors of the accounts app (the web process imports this to send them)."""

import dramatiq
from django.conf import settings

HOUR_MS = 3_600_000


@dramatiq.actor(queue_name=settings.QUEUE_DEFAULT, time_limit=HOUR_MS, max_retries=3)
def erase_account(user_id: int) -> None:
    from accounts.jobs.erase import erase

    erase(user_id)
