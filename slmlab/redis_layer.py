"""The Redis channel layer's settings (websocket pushes between processes).

channels-redis waits for a page's next message with a blocking BZPOPMIN of
``brpop_timeout`` (5 s) seconds, over and over while a page is open. redis-py 8 gave
every connection a default read timeout of 5 s (it had none before), so each idle wait
races the server's reply to its own end: when the client's timeout fires first, the
consumer dies with "Exception inside application: Timeout reading from 127.0.0.1:<port>"
and the page's websocket drops (django/channels_redis#422, redis/redis-py#4091). The
read timeout here outlasts the blocking wait, and still notices a dead Redis.
"""

from channels_redis.core import RedisChannelLayer

SOCKET_TIMEOUT_S = RedisChannelLayer.brpop_timeout + 10


def channel_layer(url: str) -> dict:
    return {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [{"address": url, "socket_timeout": SOCKET_TIMEOUT_S}]},
    }
