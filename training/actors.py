"""Dramatiq actors. They take ids only; the work is in training.runner."""

import dramatiq
from django.conf import settings

HOUR_MS = 3_600_000
# Runs stop themselves at their own time limit (Run.time_limit_s) with a checkpoint;
# Dramatiq's limit would kill the thread mid-step, so it only backs that up.
NO_LIMIT_MS = 365 * 24 * HOUR_MS


@dramatiq.actor(queue_name=settings.QUEUE_GPU, time_limit=NO_LIMIT_MS, max_retries=0)
def train_next(trigger_run_id: int) -> None:
    """A free worker: train the fairest eligible queued run (see training.scheduling).

    ``trigger_run_id`` names the run whose submission or end sent this message, for logs.
    """
    from training.runner import execute_next

    execute_next(trigger_run_id)


@dramatiq.actor(queue_name=settings.QUEUE_CHAT, time_limit=HOUR_MS // 6, max_retries=0)
def chat_reply(exchange_id: int) -> None:
    from training.runner import answer_chat

    answer_chat(exchange_id)
