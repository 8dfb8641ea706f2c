"""A small real lab for serving tests and the benchmark: an embedded Redis, a SQLite
database in a data directory, daphne serving the ASGI app, and one Dramatiq worker
process on the chat queue. Nothing is faked; the bundled model answers."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from slmlab.lab import free_port, start_embedded_redis

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

# A user with an API key, a second user with a key, and a completed run of the first
# with a tiny real LoRA adapter (random weights) on the bundled model.
SETUP = """
from accounts.models import User
from playground import services
from projects.models import BaseModel
from tests.factories import make_project, make_run
from tests.playground.adapters import write_random_adapter
from training.models import Run

base = BaseModel.objects.get(is_default=True)
owner = User.objects.create_user("serve@example.com", "a-Long-test-passw0rd")
other = User.objects.create_user("other@example.com", "a-Long-test-passw0rd")
run = make_run(make_project(owner=owner), base_model=base, status=Run.Status.COMPLETED)
write_random_adapter(base.path, run.adapter_dir)
print("SETUP", run.pk, base.name, services.create_key(owner, "k")[1],
      services.create_key(other, "k")[1])
"""


class ServingLab:
    def __init__(self, data_dir: Path, worker_threads: int = 2) -> None:
        self.data_dir = data_dir
        self.procs: list[subprocess.Popen] = []
        self.redis, redis_url = start_embedded_redis(data_dir)
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("DJANGO_", "DATABASE_URL", "REDIS_URL"))
        }
        self.env.update(
            DJANGO_SETTINGS_MODULE="slmlab.settings",
            SLMLAB_DATA_DIR=str(data_dir),
            REDIS_URL=redis_url,
            SLMLAB_API_RATE_LIMIT="0",
            HF_HUB_OFFLINE="1",
            PYTHONUNBUFFERED="1",
        )
        self.manage("migrate", "--noinput", "-v", "0")
        self.manage("import_bundled_model")
        out = self.manage("shell", "-c", SETUP)
        run_id, self.base_name, self.key, self.other_key = out.split("SETUP")[1].split()
        self.run_model = f"run-{run_id}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.start(
            "web",
            [
                str(BIN / "daphne"),
                "-b",
                "127.0.0.1",
                "-p",
                str(self.port),
                "slmlab.asgi:application",
            ],
        )
        worker = [sys.executable, "manage.py", "rundramatiq", "--processes", "1"]
        self.start("worker", [*worker, "--threads", str(worker_threads), "--queues", "chat"])
        self.wait_for(self._serving, 120, "daphne to serve")

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def start(self, name: str, command: list[str]) -> None:
        log = (self.data_dir / f"{name}.log").open("w")
        self.procs.append(
            subprocess.Popen(
                command,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )

    def _serving(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/health/", timeout=5) as response:
                return response.status == 200
        except OSError:
            return False

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.data_dir.glob("*.log"))
        )

    def wait_for(self, check, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}\n{self.logs()}")

    def generation(self, generation_id: int) -> dict:
        db = sqlite3.connect(self.data_dir / "db.sqlite3", timeout=10)
        db.row_factory = sqlite3.Row
        try:
            row = db.execute(
                "SELECT * FROM playground_generation WHERE id = ?", (generation_id,)
            ).fetchone()
            return dict(row) if row else {}
        finally:
            db.close()

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=60)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        self.redis.terminate()
        self.redis.wait(timeout=30)
