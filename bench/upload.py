"""What an upload costs the web process: daphne's resident memory during a 500 MB JSONL
upload, and the wall time of a 10 MB one, sent in pieces as the page sends them
(projects/uploads.py) against the old single request (the form without JavaScript,
its size cap lifted so that it takes the whole file), side by side.

Each mode gets a fresh daphne serving the real ASGI app in a throwaway data directory;
a real HTTP client (requests) logs in and uploads over loopback. RSS is sampled from
/proc every 20 ms; "above idle" is against daphne's RSS after a warm-up upload.

    .venv/bin/python bench/upload.py [--big-mb 500] [--small-mb 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.webserver import (  # noqa: E402
    PASSWORD,
    Daphne,
    django_script,
    lab_env,
    logged_in,
    migrate,
    new_data_dir,
)

EMAIL = "bench@example.com"


def write_jsonl(path: Path, megabytes: float) -> Path:
    """Alpaca rows of varied length, up to ``megabytes`` MiB (never over)."""
    target = int(megabytes * 2**20)
    rng = random.Random(0)
    words = ["the", "a", "model", "learns", "to", "answer", "in", "json", "with", "steps"]
    size = 0
    with path.open("w") as out:
        while True:
            row = {
                "instruction": " ".join(rng.choices(words, k=rng.randint(5, 60))),
                "input": "",
                "output": " ".join(rng.choices(words, k=rng.randint(5, 120))),
            }
            line = json.dumps(row) + "\n"
            if size + len(line) > target:
                break
            out.write(line)
            size += len(line)
    return path


class RssSampler:
    def __init__(self, daphne: Daphne) -> None:
        self.daphne = daphne
        self.peak = 0.0
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while self.running:
            self.peak = max(self.peak, self.daphne.rss_mb())
            time.sleep(0.02)

    def __enter__(self) -> RssSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.running = False
        self.thread.join()
        self.peak = max(self.peak, self.daphne.rss_mb())


def upload_in_pieces(session, url: str, project: int, path: Path) -> None:
    size = path.stat().st_size
    started = session.post(
        f"{url}/projects/{project}/uploads/",
        data={"filename": path.name, "size": size, "name": "", "text_split": "line"},
    )
    assert started.status_code == 201, started.text[:500]
    upload_url, chunk = url + started.json()["url"], started.json()["chunk_size"]
    offset = 0
    with path.open("rb") as fh:
        while offset < size:
            piece = fh.read(chunk)
            answer = session.put(
                upload_url,
                data=piece,
                headers={"Upload-Offset": str(offset), "Content-Type": "application/octet-stream"},
            )
            assert answer.status_code == 200, answer.text[:500]
            offset = answer.json()["offset"]
    done = session.post(upload_url + "finish/")
    assert done.status_code == 200 and "redirect" in done.json(), done.text[:500]


def upload_in_one_request(session, url: str, project: int, path: Path) -> None:
    with path.open("rb") as fh:
        answer = session.post(
            f"{url}/projects/{project}/datasets/upload/",
            files={"file": (path.name, fh, "application/jsonl")},
            data={"name": "", "text_split": "line"},
            allow_redirects=False,
        )
    assert answer.status_code == 302, answer.text[-500:]


MODES = {"pieces": upload_in_pieces, "one request (old)": upload_in_one_request}


def measure(mode: str, big: Path, small: Path, warm: Path, repeat: int) -> dict:
    data_dir = new_data_dir()
    # The old path without its new cap: the whole file in one request body, as before.
    env = lab_env(data_dir, SLMLAB_UPLOAD_SINGLE_REQUEST_MB="100000")
    migrate(env)
    project = django_script(
        env,
        "from accounts.models import User; from projects.models import Project\n"
        f"u = User.objects.create_user({EMAIL!r}, {PASSWORD!r}, storage_quota_mb=100000)\n"
        "print(Project.objects.create(owner=u, name='bench').pk)\n",
    ).strip()
    daphne = Daphne(env)
    try:
        session = logged_in(daphne.url, EMAIL)
        send = MODES[mode]
        assert session.get(f"{daphne.url}/projects/{project}/").ok
        send(session, daphne.url, int(project), warm)  # code paths loaded
        time.sleep(1.0)
        idle = statistics.median(daphne.rss_mb() for _ in range(5))
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            send(session, daphne.url, int(project), small)
            times.append(time.perf_counter() - started)
        time.sleep(1.0)
        before_big = daphne.rss_mb()
        with RssSampler(daphne) as sampler:
            started = time.perf_counter()
            send(session, daphne.url, int(project), big)
            big_s = time.perf_counter() - started
        return {
            "idle_mb": idle,
            "before_big_mb": before_big,
            "peak_mb": sampler.peak,
            "peak_above_idle_mb": sampler.peak - idle,
            "big_s": big_s,
            "small_s": statistics.median(times),
        }
    finally:
        daphne.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big-mb", type=float, default=500)
    parser.add_argument("--small-mb", type=float, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=list(MODES), help="measure one mode")
    args = parser.parse_args()
    files = new_data_dir()
    big = write_jsonl(files / "big.jsonl", args.big_mb)
    small = write_jsonl(files / "small.jsonl", args.small_mb)
    warm = write_jsonl(files / "warm.jsonl", 0.05)
    print(f"files: {big.stat().st_size / 2**20:.1f} MB and {small.stat().st_size / 2**20:.1f} MB")
    results = {}
    for mode in [args.only] if args.only else list(MODES):
        results[mode] = measure(mode, big, small, warm, args.repeat)
        print(mode, {k: round(v, 2) for k, v in results[mode].items()}, flush=True)
    rows = [
        ("daphne RSS idle (MB)", "idle_mb"),
        (f"daphne peak RSS above idle, {args.big_mb:.0f} MB upload (MB)", "peak_above_idle_mb"),
        (f"{args.big_mb:.0f} MB upload, wall time (s)", "big_s"),
        (f"{args.small_mb:.0f} MB upload, wall time (s, median of {args.repeat})", "small_s"),
    ]
    modes = list(results)
    print()
    print("| what | " + " | ".join(modes) + (" | ratio |" if len(modes) == 2 else " |"))
    print("| --- " * (len(modes) + 1 + (len(modes) == 2)) + "|")
    for label, key in rows:
        values = [results[m][key] for m in modes]
        cells = [f"{v:.2f}" if key.endswith("_s") else f"{v:.0f}" for v in values]
        ratio = f" {values[0] / values[1]:.2f}x |" if len(modes) == 2 and values[1] else ""
        print(f"| {label} | " + " | ".join(cells) + " |" + ratio)


if __name__ == "__main__":
    main()
