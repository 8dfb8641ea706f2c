"""Playground conversations: start one, send a message to every column, stop, delete.

Each message becomes one generation per column (``services.start_generation``), queued
to the workers like an API request; the websocket (consumers.py) relays their tokens.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Prefetch

from playground import events, services
from playground.forms import model_options
from playground.models import Answer, Conversation, Generation, Turn

TITLE_LENGTH = 60


def _title_from(content: str) -> str:
    line = " ".join(content.split())
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1] + "…"


def start(user, settings: dict, content: str) -> Conversation:
    """A new conversation with these settings, its first message sent (or nothing
    saved, when the serving core refuses the request)."""
    with transaction.atomic():
        conversation = Conversation.objects.create(
            owner=user, title=_title_from(content), **settings
        )
        send(conversation, content)
    return conversation


def _apply_settings(conversation: Conversation, settings: dict) -> None:
    """Settings for the next message; the models only while nothing was sent."""
    if conversation.turns.exists():
        settings = {k: v for k, v in settings.items() if k != "model_ids"}
    for name, value in settings.items():
        setattr(conversation, name, value)
    conversation.save(update_fields=[*settings, "updated"])


def send(conversation: Conversation, content: str, settings: dict | None = None) -> Turn:
    """The message, answered by every column's model with that column's history, with
    ``settings`` (the form's) saved first. Raises the serving core's InvalidRequest or
    UnknownModel, with nothing saved."""
    labels = {model_id: label for model_id, label, _context in model_options(conversation.owner)}
    with transaction.atomic():
        if settings:
            _apply_settings(conversation, settings)
        histories = [conversation.history(c) for c in range(len(conversation.model_ids))]
        turn = Turn.objects.create(conversation=conversation, content=content)
        for column, model_id in enumerate(conversation.model_ids):
            generation = services.start_generation(
                conversation.owner,
                model_id,
                messages=[*histories[column], {"role": "user", "content": content}],
                sampling=conversation.sampling_settings(),
            )
            Answer.objects.create(
                turn=turn,
                column=column,
                model_id=model_id,
                label=labels.get(model_id, model_id),
                generation=generation,
            )
        conversation.save(update_fields=["updated"])
        events.follow_turn(conversation.pk, turn.pk)
    return turn


def turns_of(conversation: Conversation) -> list[Turn]:
    answers = Answer.objects.select_related("generation")
    return list(conversation.turns.prefetch_related(Prefetch("answers", queryset=answers)))


ACTIVE = (Generation.Status.QUEUED, Generation.Status.RUNNING)


def active_generations(conversation: Conversation):
    return Generation.objects.filter(answer__turn__conversation=conversation, status__in=ACTIVE)


def stop(conversation: Conversation) -> None:
    """Stop every answer still queued or being written; written text is kept."""
    for generation in active_generations(conversation):
        services.cancel_generation(generation)


def delete(conversation: Conversation) -> None:
    """The conversation and its generations (they hold its messages); a worker still
    writing one stops at its next token."""
    stop(conversation)
    with transaction.atomic():
        generations = Generation.objects.filter(answer__turn__conversation=conversation)
        ids = list(generations.values_list("pk", flat=True))
        conversation.delete()
        Generation.objects.filter(pk__in=ids).delete()
