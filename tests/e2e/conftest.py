"""The whole lab as `./lab start` runs it: embedded Redis, daphne, a Dramatiq worker process."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def live_lab(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("lab-data")
    port = _free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DATABASE_URL", "REDIS_URL"))
    }
    env.update(
        SLMLAB_DATA_DIR=str(data_dir),
        SLMLAB_MODEL_STORE=os.environ["SLMLAB_MODEL_STORE"],
        HF_HUB_OFFLINE="1",
        PYTHONUNBUFFERED="1",
        # Every CSV or JSON upload is checked by the CPU worker, as large ones are, so
        # the browser follows that path too (JSONL is checked as its pieces arrive).
        SLMLAB_UPLOAD_CHECK_IN_REQUEST_MB="0",
    )
    log_path = data_dir / "lab.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "slmlab.lab", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 240
    while "SLM Lab is running" not in log_path.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the lab did not start:\n{log_path.read_text()[-4000:]}")
        time.sleep(0.5)
    banner = log_path.read_text()
    email, password = re.search(r"Log in\s+(\S+) / (\S+)", banner).groups()
    yield {
        "url": f"http://localhost:{port}",
        "email": email,
        "password": password,
        "data_dir": data_dir,
        "log": log_path,
        "process": proc,
    }
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    # No consumer or view died on the way (e.g. a Redis read timeout in a websocket).
    crashes = [
        line for line in log_path.read_text().splitlines() if "Exception inside application" in line
    ]
    assert not crashes, crashes
