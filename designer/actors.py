"""Dramatiq actors of the designer: tokenizer training on the CPU queue. Each actor
imports its worker code when a worker runs it."""

import dramatiq
from django.conf import settings

HOUR_MS = 3_600_000


@dramatiq.actor(queue_name=settings.QUEUE_DEFAULT, time_limit=2 * HOUR_MS, max_retries=0)
def train_tokenizer(tokenizer_id: int) -> None:
    from designer.jobs.tokenizer import train

    train(tokenizer_id)
