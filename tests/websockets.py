"""Websocket clients for tests: Channels' communicator against the real ASGI application."""

import asyncio
from concurrent.futures import ThreadPoolExecutor

from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from slmlab.asgi import application


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


def connect(path: str, user):
    """(connected, close code, the first message) for ``user`` (None: anonymous)."""
    headers = headers_for(user)

    async def scenario():
        communicator = WebsocketCommunicator(application, path, headers=headers)
        connected, code = await communicator.connect()
        first = await communicator.receive_from(timeout=5) if connected else None
        await communicator.disconnect()
        return connected, code, first

    return run_async(scenario)


def push_after_connect(path: str, user, action) -> str:
    """Connect, read the state sent at once, run ``action`` (sync, with database access)
    and return the next message pushed to the page."""
    headers = headers_for(user)

    async def scenario():
        communicator = WebsocketCommunicator(application, path, headers=headers)
        await communicator.connect()
        await communicator.receive_from(timeout=5)
        await database_sync_to_async(action)()
        pushed = await communicator.receive_from(timeout=10)
        await communicator.disconnect()
        return pushed

    return run_async(scenario)
