import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from slmlab.asgi import application
from tests.factories import make_run, make_user
from training.consumers import NOT_FOUND
from training.events import publish_run

pytestmark = pytest.mark.django_db(transaction=True)


def run_async(scenario):
    # In a fresh thread: the browser tests' Playwright keeps an event loop in this one.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, scenario()).result()


def headers_for(user) -> list[tuple[bytes, bytes]]:
    headers = [(b"origin", b"http://localhost")]
    if user is not None:
        client = Client()
        client.force_login(user)
        cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
        headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode()))
    return headers


def connect(run_id: int, user):
    headers = headers_for(user)

    async def scenario():
        communicator = WebsocketCommunicator(application, f"/ws/runs/{run_id}/", headers=headers)
        connected, code = await communicator.connect()
        first = await communicator.receive_from(timeout=5) if connected else None
        await communicator.disconnect()
        return connected, code, first

    return run_async(scenario)


def test_the_owner_gets_the_full_state_at_once():
    run = make_run()
    connected, _, first = connect(run.pk, run.owner)
    assert connected
    assert 'id="run-live"' in first and 'data-status="queued"' in first
    assert 'id="run-after"' in first and 'id="chat-list"' in first


def test_another_user_is_refused_like_a_404():
    run = make_run()
    connected, code, _ = connect(run.pk, make_user())
    assert not connected
    assert code == NOT_FOUND


def test_an_anonymous_visitor_is_refused():
    run = make_run()
    connected, code, _ = connect(run.pk, None)
    assert not connected
    assert code == NOT_FOUND


def test_a_missing_run_is_refused():
    connected, code, _ = connect(999_999, make_user())
    assert not connected
    assert code == NOT_FOUND


def test_a_push_reaches_the_open_page_with_full_state():
    run = make_run()
    headers = headers_for(run.owner)

    async def scenario():
        communicator = WebsocketCommunicator(application, f"/ws/runs/{run.pk}/", headers=headers)
        await communicator.connect()
        await communicator.receive_from(timeout=5)
        from channels.db import database_sync_to_async

        def progress():
            type(run).objects.filter(pk=run.pk).update(status="running", step=3, total_steps=6)
            publish_run(run.pk)

        await database_sync_to_async(progress)()
        pushed = await communicator.receive_from(timeout=5)
        await communicator.disconnect()
        return pushed

    pushed = run_async(scenario)
    assert 'data-status="running"' in pushed
    assert 'value="50" max="100"' in pushed
