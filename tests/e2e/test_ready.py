"""`./lab start` says when the lab is ready, and /ready/ agrees: the database, Redis and a
live worker on every queue, as the lab's own processes report them."""

import json
import time
import urllib.request

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_the_lab_prints_its_readiness_and_ready_answers_200(live_lab):
    deadline = time.monotonic() + 180
    while "lab: ready" not in live_lab["log"].read_text():
        assert time.monotonic() < deadline, live_lab["log"].read_text()[-3000:]
        time.sleep(0.5)
    line = next(x for x in live_lab["log"].read_text().splitlines() if x.startswith("lab: ready"))
    assert "gpu 1" in line and "default 1" in line
    with urllib.request.urlopen(live_lab["url"] + "/ready/", timeout=10) as response:
        assert response.status == 200
        report = json.load(response)
    assert report["status"] == "ready"
    assert report["redis"]["status"] == "ok"
    assert {q: p["workers"] for q, p in report["queues"].items()} == {
        "gpu": 1,
        "chat": 1,
        "default": 1,
        "interactive": 1,
    }
