"""Dramatiq actors of the Playground and /v1. They take ids only; the work (and torch)
is imported in playground.jobs when a worker runs them."""

import dramatiq
from django.conf import settings

# A generation ends at its max_tokens long before this; the limit only backs that up.
GENERATION_LIMIT_MS = 15 * 60 * 1000


@dramatiq.actor(queue_name=settings.QUEUE_CHAT, time_limit=GENERATION_LIMIT_MS, max_retries=0)
def answer(generation_id: int) -> None:
    from playground.jobs.answer import answer_generation

    answer_generation(generation_id)
