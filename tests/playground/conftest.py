import pytest

from slmlab import lab


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    """An embedded Redis (the one `./lab start` runs), for the relay."""
    proc, url = lab.start_embedded_redis(tmp_path_factory.mktemp("redis"))
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def relay_redis(redis_url, settings):
    import redis

    settings.REDIS_URL = redis_url
    redis.Redis.from_url(redis_url).flushall()
    return redis_url
