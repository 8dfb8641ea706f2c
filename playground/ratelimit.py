"""Requests per minute per API key, counted in Redis (shared by every web process) when
the lab runs on Redis, else in this process."""

from __future__ import annotations

import threading
import time

from django.conf import settings

from slmlab.presence import redis_client

WINDOW_S = 60
_local: dict[str, int] = {}
_lock = threading.Lock()


def allow(key_digest: str, now: float | None = None) -> bool:
    """Count one request for this key in the current minute; False past the limit."""
    limit = settings.SLMLAB_API_RATE_LIMIT
    if not limit:
        return True
    window = int((time.time() if now is None else now) // WINDOW_S)
    name = f"slmlab:api-rate:{key_digest[:24]}:{window}"
    client = redis_client()
    if client is not None:
        pipe = client.pipeline()
        pipe.incr(name)
        pipe.expire(name, WINDOW_S * 2)
        count = pipe.execute()[0]
    else:
        with _lock:
            for old in [k for k in _local if not k.endswith(f":{window}")]:
                del _local[old]
            count = _local[name] = _local.get(name, 0) + 1
    return count <= limit
