"""The relay between a generating worker and the web process, on a real Redis."""

from __future__ import annotations

import asyncio
import threading

import pytest

from playground import relay


async def _collect(generation_id: int, timeout: float = 10) -> list[dict]:
    return [event async for event in relay.listen(generation_id, timeout)]


def test_a_late_listener_gets_every_event_from_the_first(relay_redis) -> None:
    relay.publish_token(7, "Hel")
    relay.publish_token(7, "lo")
    relay.publish_done(7, "stop", {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5})
    relay.publish_token(8, "not mine")

    events = asyncio.run(_collect(7))

    assert events == [
        {"type": "token", "text": "Hel"},
        {"type": "token", "text": "lo"},
        {
            "type": "done",
            "finish_reason": "stop",
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        },
    ]
    assert list(relay.listen_sync(7, 10)) == events


def test_a_listener_waits_for_events_published_while_it_listens(relay_redis) -> None:
    started = threading.Event()

    def worker() -> None:
        started.wait(10)
        relay.publish_token(3, "a")
        relay.publish_error(3, "out of memory")

    async def listen() -> list[dict]:
        events = []
        async for event in relay.listen(3, timeout=10):
            events.append(event)
            started.set()
        return events

    thread = threading.Thread(target=worker)
    thread.start()
    relay.publish_token(3, "first")
    events = asyncio.run(listen())
    thread.join()

    assert [e["type"] for e in events] == ["token", "token", "error"]
    assert events[-1] == {"type": "error", "message": "out of memory", "param": None}


def test_a_silent_generation_times_out(relay_redis) -> None:
    with pytest.raises(relay.RelayTimeout):
        asyncio.run(_collect(11, timeout=0.2))
    with pytest.raises(relay.RelayTimeout):
        list(relay.listen_sync(11, 0.2))


def test_cancel_sets_the_flag_the_worker_reads(relay_redis) -> None:
    assert not relay.is_cancelled(5)
    relay.cancel(5)
    asyncio.run(relay.acancel(6))

    assert relay.is_cancelled(5) and relay.is_cancelled(6)
    assert not relay.is_cancelled(4)
