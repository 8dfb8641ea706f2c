"""The web process as the lab runs it, for benchmarks: daphne serving the real ASGI
application on a loopback port, in a throwaway data directory, and logged-in clients.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
DAPHNE = str(Path(PYTHON).parent / "daphne")
PASSWORD = "a-Long-bench-passw0rd"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def lab_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a lab in ``data_dir``: SQLite there, no Redis (in-process
    channel layer and broker: no worker is measured), offline."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE_URL", "REDIS_URL", "SLMLAB_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="slmlab.settings",
        SLMLAB_DATA_DIR=str(data_dir),
        STATIC_ROOT=str(data_dir / "static"),
        HF_HUB_OFFLINE="1",
        LOG_LEVEL="WARNING",
        **extra,
    )
    return env


def new_data_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="slmlab-bench-"))


def django_script(env: dict[str, str], code: str) -> str:
    """Run ``code`` with Django set up in the lab's environment; returns its stdout."""
    prelude = "import django; django.setup()\n"
    result = subprocess.run(
        [PYTHON, "-c", prelude + code], env=env, cwd=ROOT, capture_output=True, text=True
    )
    if result.returncode:
        sys.exit(result.stderr)
    return result.stdout


def migrate(env: dict[str, str]) -> None:
    """The database and the static files, as `./lab start` prepares them."""
    for command in (["migrate", "--noinput"], ["collectstatic", "--noinput"]):
        subprocess.run([PYTHON, "manage.py", *command, "-v", "0"], env=env, cwd=ROOT, check=True)


class Daphne:
    """daphne serving slmlab.asgi:application; its process for RSS samples."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(env["SLMLAB_DATA_DIR"]) / f"daphne-{self.port}.log"
        self.proc = subprocess.Popen(
            [DAPHNE, "-b", "127.0.0.1", "-p", str(self.port), "slmlab.asgi:application"],
            env=env,
            cwd=ROOT,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(self.url + "/health/", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"daphne did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)
        self.process = psutil.Process(self.proc.pid)

    def rss_mb(self) -> float:
        return self.process.memory_info().rss / 2**20

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def logged_in(url: str, email: str) -> requests.Session:
    session = requests.Session()
    page = session.get(url + "/accounts/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    answer = session.post(
        url + "/accounts/login/",
        data={"login": email, "password": PASSWORD, "csrfmiddlewaretoken": token},
        headers={"Referer": url + "/accounts/login/"},
        allow_redirects=False,
    )
    if answer.status_code != 302:
        sys.exit(f"could not log in as {email}: {answer.status_code}")
    session.headers["X-CSRFToken"] = session.cookies["csrftoken"]
    session.headers["Referer"] = url + "/"
    return session
