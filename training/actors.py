"""Dramatiq actors. They take ids only; the work is in training.runner."""

import dramatiq
from django.conf import settings

HOUR_MS = 3_600_000


@dramatiq.actor(queue_name=settings.QUEUE_GPU, time_limit=24 * HOUR_MS, max_retries=0)
def train_run(run_id: int) -> None:
    from training.runner import execute_run

    execute_run(run_id)


@dramatiq.actor(queue_name=settings.QUEUE_GPU, time_limit=HOUR_MS // 6, max_retries=0)
def chat_reply(exchange_id: int) -> None:
    from training.runner import answer_chat

    answer_chat(exchange_id)
