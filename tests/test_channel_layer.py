"""The Redis channel layer keeps an idle page's websocket: no read timeout inside the
blocking wait for its next message (redis-py 8's 5 s default against channels-redis's
5 s BZPOPMIN)."""

import asyncio

import pytest
import redis
from channels_redis.core import RedisChannelLayer

from slmlab import lab
from slmlab.redis_layer import channel_layer
from tests.websockets import run_async


def test_the_read_timeout_outlasts_the_blocking_wait():
    layer = RedisChannelLayer(**channel_layer("redis://127.0.0.1:1/0")["CONFIG"])
    pool = layer.create_pool(0)  # no connection is made
    assert pool.connection_kwargs["socket_timeout"] > RedisChannelLayer.brpop_timeout


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    proc, url = lab.start_embedded_redis(tmp_path_factory.mktemp("redis"))
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def _idle_receive(layer: RedisChannelLayer, seconds: float) -> BaseException | None:
    """What ends an idle page's wait for ``seconds``: None when it was still waiting."""

    async def scenario():
        channel = await layer.new_channel()
        try:
            await asyncio.wait_for(layer.receive(channel), timeout=seconds)
        except TimeoutError:  # wait_for: still waiting (redis-py raises its own class)
            return None
        except Exception as exc:
            return exc
        finally:
            await layer.flush()
        return None

    return run_async(scenario)  # in a thread: the browser tests keep a loop in this one


@pytest.mark.slow
def test_an_idle_receive_waits_through_blocking_pops_against_a_real_redis(redis_url):
    # Shorter blocking pops so that several pass within the test.
    ours = RedisChannelLayer(**channel_layer(redis_url)["CONFIG"])
    ours.brpop_timeout = 1
    assert _idle_receive(ours, 4.5) is None

    # The failure it fixes, made certain rather than a race: a blocking pop longer than
    # redis-py's default read timeout, with the connection settings left to redis-py.
    plain = RedisChannelLayer(hosts=[redis_url])
    plain.brpop_timeout = RedisChannelLayer.brpop_timeout + 1
    error = _idle_receive(plain, 10)
    assert isinstance(error, redis.exceptions.TimeoutError)
    assert "Timeout reading from" in str(error)
