"""What the Playground's websocket is told: a turn was sent (so it follows the turn's
generations), and the fragments it pushes, rendered from the database."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.template.loader import render_to_string

from playground.models import Answer

TEMPLATE = "playground/conversation.html"


def conversation_group(conversation_id: int) -> str:
    return f"conversation-{conversation_id}"


def follow_turn(conversation_id: int, turn_id: int) -> None:
    """After commit: every page open on the conversation starts relaying this turn."""

    def send() -> None:
        async_to_sync(get_channel_layer().group_send)(
            conversation_group(conversation_id), {"type": "turn.sent", "turn_id": turn_id}
        )

    transaction.on_commit(send)


def render_answer(answer: Answer) -> str:
    return render_to_string(f"{TEMPLATE}#answer", {"answer": answer})


def render_streaming_text(answer_id: int, text: str) -> str:
    """The answer so far, replacing the one on the page (a push lost or early costs
    nothing: the next carries the whole text)."""
    return render_to_string(
        "playground/_streaming_text.html", {"answer_id": answer_id, "text": text}
    )
