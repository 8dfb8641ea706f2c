"""The Playground's websocket: only the owner's, the state at once, then the tokens of
every answer being written (through a real Redis relay), ending with the saved answer."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from playground import conversations, relay
from playground.models import Answer, Conversation, Generation
from slmlab.asgi import application
from slmlab.consumers import NOT_FOUND
from tests import websockets
from tests.factories import make_base_model, make_user
from tests.playground.test_playground_forms import tuned_run

pytestmark = pytest.mark.django_db(transaction=True)

SETTINGS = {"temperature": 0.0, "max_new_tokens": 16}


@pytest.fixture(autouse=True)
def _look_at_the_database_often(monkeypatch):
    from playground import consumers

    monkeypatch.setattr(consumers, "CHECK_EVERY_S", 0.5)


def path(conversation) -> str:
    return f"/ws/playground/{conversation.pk}/"


@pytest.fixture
def conversation(user, broker, relay_redis) -> Conversation:
    base = make_base_model(context_length=2048)
    run = tuned_run(user, name="tuned")
    return conversations.start(
        user, {"model_ids": [base.name, f"run-{run.pk}"], **SETTINGS}, "Hello there"
    )


def test_the_owner_gets_the_conversation_at_once(conversation) -> None:
    connected, _, first = websockets.connect(path(conversation), conversation.owner)
    assert connected
    assert 'id="turns"' in first and "Hello there" in first
    assert first.count('data-testid="answer"') == 2


@pytest.mark.parametrize("who", ["other", "anonymous", "missing"])
def test_anyone_else_is_refused_like_a_404(conversation, who) -> None:
    user = None if who == "anonymous" else make_user()
    target = path(conversation) if who != "missing" else "/ws/playground/999999/"
    connected, code, _ = websockets.connect(target, user if who != "missing" else make_user())
    assert not connected and code == NOT_FOUND


def write(generation: Generation, pieces: list[str]) -> None:
    """What a worker does, without a model: claim, tokens, finish, the last event."""
    generation.claim()
    for piece in pieces:
        relay.publish_token(generation.pk, piece)
    generation.finish(
        output="".join(pieces), finish_reason="stop", prompt_tokens=3, completion_tokens=2
    )
    relay.publish_done(generation.pk, "stop", generation.usage)


async def receive_until(communicator, needle: str) -> list[str]:
    seen = []
    while not seen or needle not in seen[-1]:
        seen.append(await communicator.receive_from(timeout=10))
    return seen


def test_tokens_stream_into_their_column_and_end_with_the_saved_answer(conversation) -> None:
    headers = websockets.headers_for(conversation.owner)
    base_answer, tuned_answer = Answer.objects.select_related("generation").order_by("column")

    async def scenario():
        communicator = WebsocketCommunicator(application, path(conversation), headers=headers)
        assert (await communicator.connect())[0]
        await communicator.receive_from(timeout=5)
        await database_sync_to_async(write)(base_answer.generation, ["Hel", "lo!"])
        seen = await receive_until(communicator, f'id="answer-{base_answer.pk}" ')
        await communicator.disconnect()
        return seen

    seen = websockets.run_async(scenario)

    streamed = [m for m in seen if f'id="answer-{base_answer.pk}-text"' in m]
    assert streamed[0].startswith(f'<div class="answer" id="answer-{base_answer.pk}-text"')
    assert 'hx-swap-oob="true"' in streamed[0]
    assert 'data-status="done"' in seen[-1] and "Hello!" in seen[-1]
    assert f"answer-{tuned_answer.pk}" not in "".join(seen)


def test_a_message_sent_while_the_page_is_open_is_followed(conversation) -> None:
    headers = websockets.headers_for(conversation.owner)

    def send_and_answer() -> None:
        turn = conversations.send(conversation, "And now?")
        write(turn.answers.get(column=1).generation, ["Fine", " thanks"])

    async def scenario():
        communicator = WebsocketCommunicator(application, path(conversation), headers=headers)
        assert (await communicator.connect())[0]
        await communicator.receive_from(timeout=5)
        await database_sync_to_async(send_and_answer)()
        seen = await receive_until(communicator, 'data-status="done"')
        await communicator.disconnect()
        return seen

    seen = websockets.run_async(scenario)

    assert "Fine thanks" in seen[-1]


def test_an_answer_withdrawn_before_a_worker_took_it_ends_on_the_page(conversation) -> None:
    headers = websockets.headers_for(conversation.owner)

    async def scenario():
        communicator = WebsocketCommunicator(application, path(conversation), headers=headers)
        assert (await communicator.connect())[0]
        await communicator.receive_from(timeout=5)
        await database_sync_to_async(conversations.stop)(conversation)
        seen = await receive_until(communicator, 'data-status="cancelled"')
        await communicator.disconnect()
        return seen

    seen = websockets.run_async(scenario)

    assert 'data-testid="answer-stopped"' in seen[-1]
