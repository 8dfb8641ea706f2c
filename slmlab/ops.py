"""What operators watch: readiness (``/ready/``) and Prometheus metrics (``/metrics``).

``/health/`` only says the web process answers. ``/ready/`` asks every part the lab needs
to do work: the database, Redis, and a live worker on each queue; it answers 503 when
any part is down, with what is wrong, so a load balancer or ``./lab start`` can wait on it.

The metrics come from two places. What the whole lab knows (queue depth, runs by status,
workers, training speed, chat answer times) is read at scrape time from the database and
Redis, so any web process gives the same numbers. HTTP request latency is measured in the
process that served the request (each web process reports its own; Prometheus sums them).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterator
from datetime import timedelta

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.db import connection
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from slmlab import presence
from training.models import ChatExchange, Run, Worker

# Queues a worker must be consuming for the lab to be ready, and the role of each.
QUEUES = {
    settings.QUEUE_GPU: "training runs",
    settings.QUEUE_CHAT: "chat answers",
    settings.QUEUE_DEFAULT: "dataset statistics, checks and downloads",
    settings.QUEUE_INTERACTIVE: "token previews",
}

# Seconds: from a fraction of a second (a warm answer) to minutes (a cold model on a busy
# worker).
ANSWER_BUCKETS = (0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)
KNOWN_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


def _part(ok: bool, detail: str, **extra) -> dict:
    return {"status": "ok" if ok else "down", "detail": detail, **extra}


def check_database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        return _part(False, f"the database does not answer: {type(exc).__name__}")
    return _part(True, connection.vendor)


def check_redis(client) -> dict:
    if client is None:
        return _part(False, "no Redis is configured (REDIS_URL): work cannot be queued")
    try:
        client.ping()
    except Exception as exc:
        return _part(False, f"Redis does not answer: {type(exc).__name__}")
    return _part(True, "answers")


def check_queues(client, redis_ok: bool) -> dict:
    parts = {}
    for queue, role in QUEUES.items():
        if not redis_ok:
            parts[queue] = _part(False, "unknown while Redis is down", workers=None)
            continue
        live = presence.live_workers(client, queue)
        if live:
            parts[queue] = _part(True, f"{live} live worker(s) for {role}", workers=live)
        else:
            parts[queue] = _part(False, f"no live worker takes {role}", workers=0)
    return parts


def readiness() -> dict:
    client = presence.redis_client()
    database = check_database()
    redis_part = check_redis(client)
    queues = check_queues(client, redis_part["status"] == "ok")
    ready = all(p["status"] == "ok" for p in [database, redis_part, *queues.values()])
    return {
        "status": "ready" if ready else "not ready",
        "checked": timezone.now().isoformat(),
        "database": database,
        "redis": redis_part,
        "queues": queues,
    }


@never_cache
def ready(request: HttpRequest) -> JsonResponse:
    report = readiness()
    return JsonResponse(report, status=200 if report["status"] == "ready" else 503)


class LabCollector(Collector):
    """The lab's state, read from the database and Redis when Prometheus scrapes."""

    def collect(self) -> Iterator:
        yield from self._queues()
        yield from self._runs()
        yield from self._workers()
        yield self._chat_answers()

    def _queues(self) -> Iterator:
        client = presence.redis_client()
        waiting = GaugeMetricFamily(
            "slmlab_queue_messages_waiting",
            "Messages waiting on a work queue (delayed retries included)",
            labels=["queue"],
        )
        workers = GaugeMetricFamily(
            "slmlab_queue_workers", "Live worker processes consuming a queue", labels=["queue"]
        )
        up = GaugeMetricFamily("slmlab_redis_up", "1 when Redis answers")
        try:
            if client is None:
                raise ConnectionError("no Redis configured")
            namespace = "dramatiq"
            for queue in QUEUES:
                depth = client.llen(f"{namespace}:{queue}") + client.llen(f"{namespace}:{queue}.DQ")
                waiting.add_metric([queue], depth)
                workers.add_metric([queue], presence.live_workers(client, queue))
            up.add_metric([], 1)
        except Exception:
            up.add_metric([], 0)
        yield from (waiting, workers, up)

    def _runs(self) -> Iterator:
        runs = GaugeMetricFamily("slmlab_runs", "Training runs by status", labels=["status"])
        counts = dict(Run.objects.values_list("status").annotate(n=Count("pk")))
        for status in Run.Status.values:
            runs.add_metric([status], counts.get(status, 0))
        yield runs
        speed = GaugeMetricFamily(
            "slmlab_training_tokens_per_second",
            "Real (non-padding) training tokens per second of the run a worker trains",
            labels=["worker", "device"],
        )
        devices = dict(Worker.objects.values_list("name", "device"))
        running = Run.objects.filter(status=Run.Status.RUNNING).exclude(tokens_per_second=None)
        for name, tokens_per_second in running.values_list("worker", "tokens_per_second"):
            speed.add_metric([name, devices.get(name, "")], tokens_per_second)
        yield speed

    def _workers(self) -> Iterator:
        live = GaugeMetricFamily(
            "slmlab_workers_live", "Live training workers by device", labels=["device"]
        )
        total = GaugeMetricFamily(
            "slmlab_worker_memory_total_bytes",
            "Memory of a live training worker's device (GPU memory, or the host's RAM)",
            labels=["worker", "device"],
        )
        used = GaugeMetricFamily(
            "slmlab_worker_memory_used_bytes",
            "Memory in use on a live training worker's device",
            labels=["worker", "device"],
        )
        by_device: dict[str, int] = {}
        for worker in Worker.objects.all():
            if not worker.is_alive:
                continue
            by_device[worker.device] = by_device.get(worker.device, 0) + 1
            if worker.memory_total_mb is not None:
                total.add_metric([worker.name, worker.device], worker.memory_total_mb * 2**20)
            if worker.memory_used_mb is not None:
                used.add_metric([worker.name, worker.device], worker.memory_used_mb * 2**20)
        for device, n in sorted(by_device.items()):
            live.add_metric([device], n)
        yield from (live, total, used)

    def _chat_answers(self) -> HistogramMetricFamily:
        """Time from asking to both answers, over the chat exchanges the lab holds
        (counted in the database, one query)."""
        took = ExpressionWrapper(F("finished") - F("created"), output_field=DurationField())
        done = (
            ChatExchange.objects.filter(status=ChatExchange.Status.DONE)
            .exclude(finished=None)
            .annotate(took=took)
        )
        counts = {
            f"le{i}": Count("pk", filter=Q(took__lte=timedelta(seconds=bound)))
            for i, bound in enumerate(ANSWER_BUCKETS)
        }
        row = done.aggregate(n=Count("pk"), total=Sum("took"), **counts)
        buckets = [
            (floatToGoString(bound), row[f"le{i}"]) for i, bound in enumerate(ANSWER_BUCKETS)
        ]
        buckets.append(("+Inf", row["n"]))
        total = row["total"]
        return HistogramMetricFamily(
            "slmlab_chat_answer_seconds",
            "Seconds from a chat question to its base and tuned answers",
            buckets=buckets,
            sum_value=total.total_seconds() if total else 0.0,
        )


# HTTP latency of this process; the lab's state goes in a registry of its own with it.
REGISTRY = CollectorRegistry()
REGISTRY.register(LabCollector())
HTTP_LATENCY = Histogram(
    "slmlab_http_request_seconds",
    "Seconds to the response's headers, by view (this web process)",
    ["view", "method", "status"],
    buckets=REQUEST_BUCKETS,
    registry=REGISTRY,
)


def metrics(request: HttpRequest) -> HttpResponse:
    """The Prometheus exposition; 404 unless SLMLAB_METRICS_TOKEN is set, then only with
    ``Authorization: Bearer <token>``."""
    token = settings.METRICS_TOKEN
    if not token:
        raise Http404("Metrics are off (set SLMLAB_METRICS_TOKEN).")
    given = request.headers.get("Authorization", "")
    scheme, _, value = given.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip(), token):
        response = HttpResponse("A valid metrics token is needed.\n", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)


class RequestMetrics:
    """Middleware: every request's time to its response, labelled by the view's name."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):
        if self.is_async:
            return self._acall(request)
        started = time.perf_counter()
        response = self.get_response(request)
        self._observe(request, response, started)
        return response

    async def _acall(self, request: HttpRequest):
        started = time.perf_counter()
        response = await self.get_response(request)
        self._observe(request, response, started)
        return response

    @staticmethod
    def _observe(request: HttpRequest, response: HttpResponse, started: float) -> None:
        match = getattr(request, "resolver_match", None)
        # Unmatched paths share one label: a scanner must not create a series per URL.
        view = match.view_name if match and match.view_name else "unmatched"
        method = request.method if request.method in KNOWN_METHODS else "other"
        HTTP_LATENCY.labels(view, method, str(response.status_code)).observe(
            time.perf_counter() - started
        )
