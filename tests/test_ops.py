"""Readiness (/ready/) and Prometheus metrics (/metrics), against a real Redis and real
Dramatiq workers for the parts that need them."""

import json
import re
from datetime import timedelta
from pathlib import Path

import dramatiq
import pytest
import yaml
from django.utils import timezone
from dramatiq.brokers.redis import RedisBroker
from prometheus_client.parser import text_string_to_metric_families

from slmlab import lab, ops, presence
from tests import factories
from training.models import ChatExchange, Run, Worker


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    proc, url = lab.start_embedded_redis(tmp_path_factory.mktemp("redis"))
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def redis_broker(redis_url, settings):
    """A real Redis broker as the lab's broker, for the length of one test."""
    settings.WORKER_HEARTBEAT_S = 1
    previous = dramatiq.get_broker()
    broker = RedisBroker(url=redis_url, middleware=[presence.QueuePresence()])
    broker.client.flushall()
    for queue in ops.QUEUES:
        broker.declare_queue(queue)
    dramatiq.set_broker(broker)
    yield broker
    dramatiq.set_broker(previous)
    broker.client.flushall()
    broker.close()


def start_worker(broker, queues):
    worker = dramatiq.Worker(broker, queues=set(queues), worker_threads=1, worker_timeout=100)
    worker.start()
    return worker


def test_ready_without_redis_is_503_and_says_what_is_missing(client, db):
    response = client.get("/ready/")
    assert response.status_code == 503
    report = response.json()
    assert report["status"] == "not ready"
    assert report["database"]["status"] == "ok"
    assert report["redis"]["status"] == "down"
    assert "REDIS_URL" in report["redis"]["detail"]
    assert set(report["queues"]) == {"gpu", "chat", "default", "interactive"}
    assert all(part["status"] == "down" for part in report["queues"].values())


def test_health_stays_a_liveness_check(client, db):
    assert client.get("/health/").status_code == 200


@pytest.mark.slow
def test_ready_follows_real_workers_on_each_queue(client, db, redis_broker):
    # Redis answers but no worker consumes anything yet.
    report = client.get("/ready/").json()
    assert report["redis"]["status"] == "ok"
    assert {q: p["workers"] for q, p in report["queues"].items()} == dict.fromkeys(ops.QUEUES, 0)
    assert "no live worker takes training runs" in report["queues"]["gpu"]["detail"]

    gpu = start_worker(redis_broker, ["gpu", "chat"])
    cpu = start_worker(redis_broker, ["interactive", "default"])
    try:
        response = client.get("/ready/")
        assert response.status_code == 200, response.json()
        report = response.json()
        assert report["status"] == "ready"
        assert all(p["workers"] == 1 for p in report["queues"].values())
        assert lab.readiness_line(report).startswith("lab: ready")
    finally:
        cpu.stop()
    # The CPU worker said goodbye: its queues have nobody, the GPU worker's still do.
    response = client.get("/ready/")
    assert response.status_code == 503
    queues = response.json()["queues"]
    assert queues["gpu"]["status"] == "ok" and queues["chat"]["status"] == "ok"
    assert queues["default"]["status"] == "down"
    line = lab.readiness_line(response.json())
    assert line.startswith("lab: not ready yet") and "queue default" in line
    gpu.stop()


def test_a_silent_worker_stops_counting_after_the_stale_window(redis_broker, settings):
    client = redis_broker.client
    presence.stamp(client, "host:1", ["gpu"], now=1000.0)
    settings.WORKER_STALE_AFTER_S = 60
    assert presence.live_workers(client, "gpu", now=1059.0) == 1
    assert presence.live_workers(client, "gpu", now=1061.0) == 0


# --- /metrics ---


def test_metrics_are_off_without_a_token(client, db, settings):
    settings.METRICS_TOKEN = None
    assert client.get("/metrics").status_code == 404


def test_metrics_need_the_operators_token(client, db, settings):
    settings.METRICS_TOKEN = "s3cret"
    assert client.get("/metrics").status_code == 401
    wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong["WWW-Authenticate"].startswith("Bearer")
    ok = client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200
    assert ok["Content-Type"].startswith("text/plain")


def scrape(client) -> dict:
    response = client.get("/metrics", headers={"Authorization": "Bearer t"})
    assert response.status_code == 200
    families = text_string_to_metric_families(response.content.decode())
    return {family.name: family for family in families}


def samples(family, name=None) -> dict:
    return {
        tuple(sorted(s.labels.items())): s.value
        for s in family.samples
        if name is None or s.name == name
    }


def test_metrics_report_runs_workers_speed_and_chat_answer_times(client, settings, user):
    settings.METRICS_TOKEN = "t"
    project = factories.make_project(user)
    run = factories.make_run(project)
    Run.objects.filter(pk=run.pk).update(
        status=Run.Status.RUNNING, worker="gpu-host:7", tokens_per_second=250.0
    )
    factories.make_run(project)  # queued
    Worker.objects.create(
        name="gpu-host:7",
        hostname="gpu-host",
        pid=7,
        device="NVIDIA H200",
        memory_total_mb=1024,
        memory_used_mb=256,
    )
    Worker.objects.create(
        name="old:1",
        hostname="old",
        pid=1,
        device="CPU (2 cores)",
        last_seen=timezone.now() - timedelta(hours=1),
    )
    now = timezone.now()
    for seconds in (0.4, 3, 45):
        exchange = ChatExchange.objects.create(run=run, owner=user, prompt="hi")
        ChatExchange.objects.filter(pk=exchange.pk).update(
            status=ChatExchange.Status.DONE,
            created=now - timedelta(seconds=seconds),
            finished=now,
        )
    ChatExchange.objects.create(run=run, owner=user, prompt="still waiting")

    families = scrape(client)

    runs = samples(families["slmlab_runs"])
    assert runs[(("status", "running"),)] == 1
    assert runs[(("status", "queued"),)] == 1
    assert runs[(("status", "failed"),)] == 0
    speed = samples(families["slmlab_training_tokens_per_second"])
    assert speed == {(("device", "NVIDIA H200"), ("worker", "gpu-host:7")): 250.0}
    # Only the live worker counts, with its memory in bytes.
    assert samples(families["slmlab_workers_live"]) == {(("device", "NVIDIA H200"),): 1}
    used = samples(families["slmlab_worker_memory_used_bytes"])
    assert used == {(("device", "NVIDIA H200"), ("worker", "gpu-host:7")): 256 * 2**20}
    answers = families["slmlab_chat_answer_seconds"]
    buckets = {s.labels["le"]: s.value for s in answers.samples if s.name.endswith("_bucket")}
    assert buckets["0.5"] == 1 and buckets["5.0"] == 2 and buckets["60.0"] == 3
    assert buckets["+Inf"] == 3
    count = samples(answers, "slmlab_chat_answer_seconds_count")
    assert count == {(): 3}
    assert samples(answers, "slmlab_chat_answer_seconds_sum")[()] == pytest.approx(48.4, abs=0.1)
    # No Redis here: the queue gauges say so instead of failing the scrape.
    assert samples(families["slmlab_redis_up"]) == {(): 0}


def test_http_latency_is_labelled_by_view_not_by_path(client, settings, owner_client):
    settings.METRICS_TOKEN = "t"
    owner_client.get("/projects/")
    client.get("/no/such/page/1")
    client.get("/no/such/page/2")
    latency = scrape(client)["slmlab_http_request_seconds"]
    counts = samples(latency, "slmlab_http_request_seconds_count")
    views = {dict(labels)["view"] for labels in counts}
    assert "projects:list" in views
    assert "unmatched" in views
    assert not any("/no/such" in view for view in views)
    unmatched = [v for k, v in counts.items() if dict(k)["view"] == "unmatched"]
    assert sum(unmatched) >= 2


@pytest.mark.slow
def test_queue_depth_comes_from_the_broker(client, db, redis_broker, settings):
    settings.METRICS_TOKEN = "t"

    @dramatiq.actor(queue_name="default", broker=redis_broker, actor_name="ops_test_noop")
    def noop():
        pass

    for _ in range(3):
        noop.send()
    families = scrape(client)
    waiting = samples(families["slmlab_queue_messages_waiting"])
    assert waiting[(("queue", "default"),)] == 3
    assert waiting[(("queue", "gpu"),)] == 0
    assert samples(families["slmlab_redis_up"]) == {(): 1}


# --- the monitoring deployment (compose profile "monitoring") ---

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy/grafana/dashboards/slmlab.json"


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_every_dashboard_query_names_metrics_the_lab_exports(client, settings, user):
    settings.METRICS_TOKEN = "t"
    factories.make_run(factories.make_project(user))
    client.get("/health/")  # so the request histogram has a series
    exported = set()
    for family in scrape(client).values():
        exported |= {s.name for s in family.samples} | {family.name}
    queries = dashboard_queries()
    assert len(queries) >= 10
    for query in queries:
        named = set(re.findall(r"\bslmlab_[a-z_]+", query))
        assert named, f"{query!r} names no metric of the lab"
        missing = named - exported
        assert not missing, f"{query!r} names {missing}, which /metrics does not export"


def test_compose_runs_prometheus_and_grafana_on_the_committed_files():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    for name in ("prometheus", "grafana"):
        service = compose["services"][name]
        assert service["profiles"] == ["monitoring"]
        for volume in service["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source
    scrape_config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    job = scrape_config["scrape_configs"][0]
    assert job["metrics_path"] == "/metrics"
    assert job["authorization"]["type"] == "Bearer"
    assert job["static_configs"][0]["targets"] == ["web:8000"]
