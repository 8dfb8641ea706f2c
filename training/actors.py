"""Dramatiq actors. They take ids only; the work is in training.jobs.

The web process imports this module to send messages, and must not load torch, so each
actor imports its worker code when a worker runs it.
"""

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
    When a run ends its slot is free again, so the token passes on: the next fair run
    (perhaps a capped user's) may start.
    """
    from training.jobs.train import claim_next_run, train_claimed

    run = claim_next_run()
    if run is None:
        dramatiq.get_logger(__name__).info("token from run %s: nothing may start", trigger_run_id)
        return
    try:
        train_claimed(run)
    finally:
        train_next.send(run.pk)


@dramatiq.actor(queue_name=settings.QUEUE_CHAT, time_limit=HOUR_MS // 6, max_retries=0)
def generate_text(generation_id: int) -> None:
    from training.jobs.generate import generate

    generate(generation_id)


@dramatiq.actor(queue_name=settings.QUEUE_CHAT, time_limit=HOUR_MS // 6, max_retries=0)
def chat_reply(exchange_id: int) -> None:
    from training.jobs.chat import answer_chat

    answer_chat(exchange_id)
