"""Worker crashes with real processes: a real Redis, two Dramatiq workers, kill -9 and SIGTERM.

Each test runs its own small lab: an embedded Redis (the one `./lab start` uses), a
SQLite database in a temporary data directory, and two `manage.py rundramatiq`
masters with one worker process each. Heartbeats are tuned to 1 s and a worker is
stale after 5 s of silence, so a dead worker is noticed quickly; the beats come from
a process beside each worker, which a busy training step cannot starve (a live
worker is never taken for dead, on a loaded machine too). Nothing else is faked.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from slmlab.lab import start_embedded_redis

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CREATE_RUN = """
import json
from accounts.models import User
from projects.datasets import store_sample
from projects.models import BaseModel, Project
from training import services
from training.forms import CONFIG_FIELDS, _config_defaults

user = User.objects.create_user("crash@example.com", "a-Long-test-passw0rd")
project = Project.objects.create(owner=user, name="crashes")
config = {k: v for k, v in _config_defaults().items() if k in CONFIG_FIELDS}
config.update(json.loads('__RUN_CONFIG__'))
run = services.start_run(
    owner=user, project=project, dataset=store_sample(project),
    base_model=BaseModel.objects.get(is_default=True), name="survivor", config=config,
)
print("RUN", run.pk)
"""

# Small enough to train in seconds on a busy 2-core CPU, long enough to kill mid-run.
RUN_CONFIG = (
    '{"quantization": "none", "max_steps": 16, "batch_size": 2, "max_seq_len": 64, '
    '"checkpoint_every": 3, "keep_checkpoints": 2, "lora_dropout": 0.0}'
)


class MiniLab:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
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
            SLMLAB_WORKER_HEARTBEAT_S="1",
            SLMLAB_WORKER_STALE_AFTER_S="5",
            dramatiq_queue_prefetch="1",
            HF_HUB_OFFLINE="1",
            PYTHONUNBUFFERED="1",
        )
        self.masters: list[subprocess.Popen] = []
        self.manage("migrate", "--noinput", "-v", "0")
        self.manage("import_bundled_model")

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def start_worker(self, *queues: str) -> subprocess.Popen:
        log = (self.data_dir / f"worker-{len(self.masters)}.log").open("w")
        command = [sys.executable, "manage.py", "rundramatiq", "--processes", "1", "--threads", "1"]
        master = subprocess.Popen(
            [*command, *(["--queues", *queues] if queues else [])],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.masters.append(master)
        return master

    def create_run(self) -> int:
        out = self.manage("shell", "-c", CREATE_RUN.replace("__RUN_CONFIG__", RUN_CONFIG))
        return int(out.split("RUN")[1].split()[0])

    def query(self, sql: str, *params) -> list[tuple]:
        db = sqlite3.connect(self.data_dir / "db.sqlite3", timeout=10)
        try:
            return db.execute(sql, params).fetchall()
        finally:
            db.close()

    def run_row(self, run_id: int) -> dict:
        (row,) = self.query(
            "SELECT status, step, worker, crash_resumes, error FROM training_run WHERE id = ?",
            run_id,
        )
        return dict(zip(["status", "step", "worker", "crash_resumes", "error"], row, strict=True))

    def logs(self, run_id: int) -> list[str]:
        rows = self.query("SELECT line FROM training_runlog WHERE run_id = ? ORDER BY id", run_id)
        return [line for (line,) in rows]

    def metric_steps(self, run_id: int) -> list[int]:
        rows = self.query("SELECT step FROM training_runmetric WHERE run_id = ?", run_id)
        return sorted(step for (step,) in rows)

    def wait_for(self, check, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(0.3)
        worker_logs = "\n".join(
            p.read_text()[-3000:] for p in sorted(self.data_dir.glob("worker-*.log"))
        )
        pytest.fail(f"timed out waiting for {what}\n{worker_logs}")

    def close(self) -> None:
        for master in self.masters:
            if master.poll() is None:
                master.send_signal(signal.SIGTERM)
        for master in self.masters:
            with contextlib.suppress(subprocess.TimeoutExpired):
                master.wait(timeout=60)
            with_group_killed(master)
        self.redis.terminate()
        self.redis.wait(timeout=30)


def with_group_killed(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.fixture
def lab(tmp_path, bundled_model_dir):
    mini = MiniLab(tmp_path)
    yield mini
    mini.close()


def worker_pid(name: str) -> int:
    return int(name.rsplit(":", 1)[1])


def wait_until_registered(lab: MiniLab, workers: int) -> None:
    """Both workers are up and beating before the run starts, so "the other worker" exists."""
    lab.wait_for(
        lambda: lab.query("SELECT count(*) FROM training_worker")[0][0] == workers,
        240,
        f"{workers} workers to register",
    )


def wait_until_trained_past_a_checkpoint(lab: MiniLab, run_id: int) -> dict:
    return lab.wait_for(
        lambda: (row := lab.run_row(run_id))["status"] == "running" and row["step"] >= 4 and row,
        240,
        "the run to pass its first checkpoint (step 3)",
    )


def test_kill_9_mid_run_resumes_on_the_other_worker_without_duplicate_steps(lab):
    lab.start_worker(), lab.start_worker()
    wait_until_registered(lab, 2)
    run_id = lab.create_run()
    row = wait_until_trained_past_a_checkpoint(lab, run_id)
    victim = worker_pid(row["worker"])
    os.kill(victim, signal.SIGKILL)

    final = lab.wait_for(
        lambda: (r := lab.run_row(run_id))["status"] in ("completed", "failed") and r,
        240,
        "the run to finish on the surviving worker",
    )
    logs = lab.logs(run_id)
    assert final["status"] == "completed", logs
    assert final["crash_resumes"] == 1
    assert worker_pid(final["worker"]) != victim
    assert lab.metric_steps(run_id) == list(range(1, 17))  # each step exactly once
    assert any(line.startswith("interrupted: its worker") for line in logs)
    resumed = [
        line for line in logs if "resumes from checkpoint step" in line and " on CPU" in line
    ]
    assert resumed and any(f"checkpoint step-0000000{s}" in "\n".join(logs) for s in (3, 6, 9))
    assert (lab.data_dir / "runs" / f"run-{run_id}" / "adapter" / "adapter_config.json").exists()


def test_sigterm_checkpoints_and_the_run_resumes_where_it_stopped(lab):
    first = lab.start_worker()
    run_id = lab.create_run()
    row = wait_until_trained_past_a_checkpoint(lab, run_id)
    second = lab.start_worker()
    os.kill(worker_pid(row["worker"]), signal.SIGTERM)

    final = lab.wait_for(
        lambda: (r := lab.run_row(run_id))["status"] in ("completed", "failed") and r,
        240,
        "the run to finish after the graceful stop",
    )
    logs = lab.logs(run_id)
    assert final["status"] == "completed", logs
    assert final["crash_resumes"] == 0  # a graceful stop is not a crash
    stop_lines = [line for line in logs if line.startswith("worker stopping: run resumes from")]
    assert len(stop_lines) == 1
    stopped_at = int(stop_lines[0].rsplit(" ", 1)[1])
    assert stopped_at >= 4  # checkpointed where it was, not at the last periodic one (3)
    assert f"resumes from checkpoint step {stopped_at}" in "\n".join(logs)
    assert lab.metric_steps(run_id) == list(range(1, 17))
    first.wait(timeout=60)  # the stopped worker's master exits (TimeoutExpired otherwise)
    assert second.poll() is None


def test_a_duplicated_message_never_trains_a_run_twice(lab):
    lab.start_worker(), lab.start_worker()
    run_id = lab.create_run()
    lab.manage(
        "shell",
        "-c",
        "from training.actors import train_next\n"
        f"message = train_next.message({run_id})\n"
        "train_next.broker.enqueue(message)\n"
        "train_next.broker.enqueue(message)\n",
    )
    final = lab.wait_for(
        lambda: (r := lab.run_row(run_id))["status"] in ("completed", "failed") and r,
        240,
        "the run to finish",
    )
    logs = lab.logs(run_id)
    assert final["status"] == "completed", logs
    assert sum(line.startswith("claimed by a worker") for line in logs) == 1
    assert lab.metric_steps(run_id) == list(range(1, 17))


CREATE_GENERATION = """
from accounts.models import User
from playground import services

user = User.objects.create_user("crash@example.com", "a-Long-test-passw0rd")
generation = services.start_generation(
    user, "SmolLM2-135M-Instruct", prompt="Count to a thousand: 1, 2, 3, 4,",
    sampling={"max_new_tokens": 4000},
)
print("GENERATION", generation.pk)
"""


def test_kill_9_of_a_worker_that_never_beats_fails_its_job_with_the_reason(lab):
    # The chat-only worker trains nothing, so it has no heartbeat row; the training
    # worker beside it sees its process gone and fails the generation it held.
    lab.start_worker("gpu")
    wait_until_registered(lab, 1)
    lab.start_worker("chat")
    out = lab.manage("shell", "-c", CREATE_GENERATION)
    generation_id = int(out.split("GENERATION")[1].split()[0])

    def row():
        (found,) = lab.query(
            "SELECT status, worker, first_token, error FROM playground_generation WHERE id = ?",
            generation_id,
        )
        return dict(zip(["status", "worker", "first_token", "error"], found, strict=True))

    held = lab.wait_for(
        lambda: (r := row())["status"] == "running" and r["first_token"] and r,
        240,
        "the chat worker to stream its first token",
    )
    os.kill(worker_pid(held["worker"]), signal.SIGKILL)
    killed = time.monotonic()
    final = lab.wait_for(lambda: (r := row())["status"] != "running" and r, 30, "the reaper")
    took = time.monotonic() - killed
    print(f"failed {took:.1f} s after the kill")
    assert took < 5  # within the stale window (5 s here): its process is gone at once
    assert final["status"] == "failed"
    assert "stopped unexpectedly (crash or restart); start it again" in final["error"]
