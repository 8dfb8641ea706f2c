"""Events of one generation, from the worker that generates to the web process that
answers the client, through Redis (the server of the Dramatiq broker and channel layer).

Each generation has a Redis stream of events, read from its start, so a listener that
subscribes late (the first token can come before the web process starts listening)
misses nothing. Events are dicts:

- ``{"type": "token", "text": str}``: the next piece of the reply;
- ``{"type": "done", "finish_reason": "stop" | "length" | "cancelled",
  "usage": {"prompt_tokens", "completion_tokens", "total_tokens"}}``: the last event;
- ``{"type": "error", "message": str, "param": str | None}``: the last event; ``param``
  names the request parameter at fault (e.g. ``max_tokens`` when the prompt and the
  reply would not fit the model's context), else None.

A listener that goes away sets the generation's cancel flag; the worker checks it after
every token (``is_cancelled``) and stops. Keys expire after ``TTL_S``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import redis
import redis.asyncio
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

TTL_S = 3600
FINAL = ("done", "error")
# How long a listener waits for the next event by default: the first token may wait
# for a model to load on a busy worker.
LISTEN_TIMEOUT_S = 300.0
_EVENTS = "slmlab:generation:{id}:events"
_CANCEL = "slmlab:generation:{id}:cancel"


class RelayTimeout(TimeoutError):
    """No event came within the listener's timeout (no worker, or a stuck one)."""


def _url() -> str:
    if not settings.REDIS_URL:
        raise ImproperlyConfigured("Generations are relayed through Redis: set REDIS_URL.")
    return settings.REDIS_URL


@functools.cache
def _client_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


def client() -> redis.Redis:
    return _client_for(_url())


def _socket_timeout(block_s: float) -> float:
    # redis-py 8 reads with a 5 s timeout by default: a longer blocking XREAD needs more.
    return block_s + 10


# --- worker side ---


def publish(generation_id: int, event: dict[str, Any]) -> None:
    key = _EVENTS.format(id=generation_id)
    pipe = client().pipeline()
    pipe.xadd(key, {"event": json.dumps(event)})
    pipe.expire(key, TTL_S)
    pipe.execute()


def publish_token(generation_id: int, text: str) -> None:
    publish(generation_id, {"type": "token", "text": text})


def publish_done(generation_id: int, finish_reason: str, usage: dict[str, int]) -> None:
    publish(generation_id, {"type": "done", "finish_reason": finish_reason, "usage": usage})


def publish_error(generation_id: int, message: str, param: str | None = None) -> None:
    publish(generation_id, {"type": "error", "message": message, "param": param})


def is_cancelled(generation_id: int) -> bool:
    return bool(client().exists(_CANCEL.format(id=generation_id)))


# --- web side ---


def cancel(generation_id: int) -> None:
    """Ask the worker to stop (it notices after its next token)."""
    client().set(_CANCEL.format(id=generation_id), 1, ex=TTL_S)


async def acancel(generation_id: int) -> None:
    conn = redis.asyncio.Redis.from_url(_url())
    try:
        await conn.set(_CANCEL.format(id=generation_id), 1, ex=TTL_S)
    finally:
        await conn.aclose()


def _events(reply: Any) -> Iterator[tuple[bytes, dict[str, Any]]]:
    for _key, entries in reply or []:
        for entry_id, fields in entries:
            yield entry_id, json.loads(fields[b"event"])


async def listen(
    generation_id: int, timeout: float = LISTEN_TIMEOUT_S
) -> AsyncIterator[dict[str, Any]]:
    """The generation's events from the first, until ``done`` or ``error`` (included).

    Raises :class:`RelayTimeout` when no event comes for ``timeout`` seconds.
    """
    key = _EVENTS.format(id=generation_id)
    conn = redis.asyncio.Redis.from_url(_url(), socket_timeout=_socket_timeout(timeout))
    last: bytes | str = "0"
    try:
        while True:
            reply = await conn.xread({key: last}, block=max(1, int(timeout * 1000)), count=256)
            if not reply:
                raise RelayTimeout(f"no event from generation {generation_id} in {timeout:g} s")
            for entry_id, event in _events(reply):
                last = entry_id
                yield event
                if event["type"] in FINAL:
                    return
    finally:
        await conn.aclose()


def listen_sync(generation_id: int, timeout: float = LISTEN_TIMEOUT_S) -> Iterator[dict[str, Any]]:
    """:func:`listen` for synchronous code (a synchronous consumer, a management command)."""
    key = _EVENTS.format(id=generation_id)
    conn = redis.Redis.from_url(_url(), socket_timeout=_socket_timeout(timeout))
    last: bytes | str = "0"
    try:
        while True:
            reply = conn.xread({key: last}, block=max(1, int(timeout * 1000)), count=256)
            if not reply:
                raise RelayTimeout(f"no event from generation {generation_id} in {timeout:g} s")
            for entry_id, event in _events(reply):
                last = entry_id
                yield event
                if event["type"] in FINAL:
                    return
    finally:
        conn.close()
