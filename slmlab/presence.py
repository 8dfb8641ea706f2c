"""Which queues have a live worker: every worker process stamps the queues it consumes in
Redis, and readiness (``/ready/``) and the metrics count the fresh stamps.

Training workers also have a row in ``training.models.Worker`` (device, memory), but CPU
workers do not, and neither says which queues it takes. A stamp is a member of one
sorted set per queue, scored with the time of its last beat: fresh while younger than
``WORKER_STALE_AFTER_S``, dropped when the worker stops, and swept when stale.
"""

from __future__ import annotations

import logging
import threading
import time

import dramatiq
from django.conf import settings

from training.workers import worker_name

logger = logging.getLogger(__name__)

KEY = "slmlab:queue-workers:{queue}"


def redis_client():
    """The Redis client of the configured Dramatiq broker; None on the in-process stub."""
    return getattr(dramatiq.get_broker(), "client", None)


def consumed_queues(broker, worker) -> list[str]:
    whitelist = worker.consumer_whitelist
    queues = whitelist if whitelist else broker.get_declared_queues()
    # Dramatiq's own delay queues (name.DQ) are not queues a user's work waits on.
    return sorted(q for q in queues if not q.endswith((".DQ", ".XQ")))


def stamp(client, name: str, queues: list[str], now: float | None = None) -> None:
    now = time.time() if now is None else now
    pipe = client.pipeline()
    for queue in queues:
        pipe.zadd(KEY.format(queue=queue), {name: now})
    pipe.execute()


def unstamp(client, name: str, queues: list[str]) -> None:
    pipe = client.pipeline()
    for queue in queues:
        pipe.zrem(KEY.format(queue=queue), name)
    pipe.execute()


def live_workers(client, queue: str, now: float | None = None) -> int:
    """How many worker processes consumed ``queue`` within the stale window."""
    now = time.time() if now is None else now
    key = KEY.format(queue=queue)
    client.zremrangebyscore(key, "-inf", now - 10 * settings.WORKER_STALE_AFTER_S)
    return client.zcount(key, now - settings.WORKER_STALE_AFTER_S, "+inf")


def last_stamps(client) -> dict[str, float]:
    """Each stamped worker's latest stamp on any of its queues (a Unix time)."""
    latest: dict[str, float] = {}
    for key in client.scan_iter(match=KEY.format(queue="*")):
        for name, score in client.zrange(key, 0, -1, withscores=True):
            name = name.decode() if isinstance(name, bytes) else name
            latest[name] = max(score, latest.get(name, score))
    return latest


class QueuePresence(dramatiq.Middleware):
    """In every worker process: stamps its queues every heartbeat until it stops."""

    def after_worker_boot(self, broker, worker) -> None:
        client = getattr(broker, "client", None)
        if client is None:
            return
        self.client = client
        self.queues = consumed_queues(broker, worker)
        self.name = worker_name()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True, name="slmlab-presence")
        self.thread.start()

    def before_worker_shutdown(self, broker, worker) -> None:
        if not hasattr(self, "thread"):
            return
        self.stop.set()
        self.thread.join(timeout=10)
        try:
            unstamp(self.client, self.name, self.queues)
        except Exception:
            logger.exception("could not remove this worker's queue stamps")

    def _loop(self) -> None:
        while not self.stop.is_set():
            try:
                stamp(self.client, self.name, self.queues)
            except Exception:
                logger.exception("could not stamp this worker's queues")
            self.stop.wait(settings.WORKER_HEARTBEAT_S)
