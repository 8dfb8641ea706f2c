"""Time from the click on "Start training" to the first metric on the page, and tokens/s.

Starts the whole lab as `./lab start` does (embedded Redis, daphne, one worker) in a
throwaway data directory, drives Debian's chromium through the sample-dataset run
with the form's pre-filled settings, and prints the timings.

    .venv/bin/python bench/first_metric.py [--steps 60]
"""

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.browser_fixtures import CHROMIUM, CHROMIUM_ARGS  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="slmlab-bench-"))
    port = free_port()
    log = data / "lab.log"
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env.update(SLMLAB_DATA_DIR=str(data), HF_HUB_OFFLINE="1")
    env.setdefault("SLMLAB_MODEL_STORE", str(ROOT / "data" / "models"))
    lab = subprocess.Popen(
        [sys.executable, "-m", "slmlab.lab", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        while "SLM Lab is running" not in log.read_text():
            if lab.poll() is not None:
                sys.exit(log.read_text())
            time.sleep(0.5)
        email, password = re.search(r"Log in\s+(\S+) / (\S+)", log.read_text()).groups()
        url = f"http://localhost:{port}"
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.set_default_timeout(600_000)
            page.goto(url + "/accounts/login/")
            page.locator("input[name=login]").fill(email)
            page.locator("input[name=password]").fill(password)
            page.locator("main button[type=submit]").click()
            page.locator("#create-project input[name=name]").fill("bench")
            page.get_by_role("button", name="Create project").click()
            page.get_by_test_id("add-sample").click()
            page.get_by_role("button", name="Train on this").click()
            page.locator("input[name=max_steps]").fill(str(args.steps))
            clicked = time.monotonic()
            page.get_by_test_id("start-run").click()
            expect(page.get_by_test_id("loss")).not_to_have_text("\u2013", timeout=600_000)
            first_metric = time.monotonic() - clicked
            expect(page.get_by_test_id("run-status")).to_have_text("completed", timeout=1_800_000)
            done = time.monotonic() - clicked
            result = page.request.get(page.url.rstrip("/") + ".json").json()
            browser.close()
    finally:
        lab.send_signal(signal.SIGINT)
        lab.wait(timeout=120)
    print(f"click → first metric on the page: {first_metric:.1f} s")
    print(f"click → run completed ({args.steps} steps): {done:.1f} s")
    print(f"real tokens/s (non-padding, whole run): {result['tokens_per_second']:.0f}")
    peak = result["memory_mb"]["cpu_peak_rss"]
    print(f"final loss: {result['final_loss']:.4f}; peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main()
