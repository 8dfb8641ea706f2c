"""Server time of the pages students use most, on a lab with realistic data.

Seeds a throwaway data directory (SQLite) with 50 users, each with 20 projects holding
datasets (versions, validation shares, statistics) and runs (mostly completed, some
running, queued, failed; a few hundred metric steps and log lines each), starts daphne
with the real ASGI app, logs every user in with a real HTTP client and requests the
project list, a project page, a dataset page, a run page and the model catalog with a
bounded number of requests in flight (closed loop over loopback). Prints p50/p95 per
page, at one request in flight (the server's own time: loopback adds well under 1 ms)
and at ``--concurrency``, and the SQL queries each page makes.

    .venv/bin/python bench/pages.py [--requests 200] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.webserver import (  # noqa: E402
    Daphne,
    django_script,
    lab_env,
    logged_in,
    migrate,
    new_data_dir,
)

PAGES = ("project list", "project page", "dataset page", "run page", "catalog")
SMOLLM2_135M = {
    "model_type": "llama",
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "vocab_size": 49152,
    "max_position_embeddings": 8192,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
}


def seed(users: int, projects: int, datasets: int, runs: int, seed_value: int = 0) -> dict:
    """Fill the lab's database (Django set up); returns the ids the load generator uses."""
    import uuid

    from django.conf import settings
    from django.db import transaction
    from django.utils import timezone

    from accounts.models import User
    from projects.models import BaseModel, Dataset, DatasetStats, Project
    from tests.factories import ALPACA_ROWS
    from training.engine.data.samples import write_jsonl
    from training.engine.data.stats import dataset_stats
    from training.forms import CONFIG_FIELDS, _config_defaults
    from training.models import Run, RunLog, RunMetric

    rng = random.Random(seed_value)
    model_dir = Path(settings.MODEL_STORE_DIR) / "SmolLM2-135M-Instruct"
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "config.json").write_text(json.dumps(SMOLLM2_135M))
    model = BaseModel.objects.create(
        name="SmolLM2-135M-Instruct",
        path=str(model_dir),
        source=BaseModel.Source.BUNDLED,
        is_default=True,
        **BaseModel.facts_of(model_dir),
    )
    config = {k: v for k, v in _config_defaults().items() if k in CONFIG_FIELDS}
    pairs = [
        ({"instruction": "q", "output": "a"}, {"input_ids": [1] * n, "labels": [1] * n})
        for n in (rng.randint(20, 400) for _ in range(240))
    ]
    stats_result = dataset_stats(pairs, 512)
    preview = [
        {"system": "", "turns": [{"role": "user", "content": r["instruction"]}]}
        for r in ALPACA_ROWS
    ]
    now = timezone.now()
    ids: dict[str, list] = {"users": [], "projects": {}, "datasets": {}, "runs": {}}
    for u in range(users):
        with transaction.atomic():
            user = User.objects.create_user(f"student{u}@example.com", "a-Long-bench-passw0rd")
            ids["users"].append(user.email)
            for p in range(projects):
                project = Project.objects.create(owner=user, name=f"project {p}")
                ids["projects"].setdefault(user.email, []).append(project.pk)
                made = []
                for d in range(datasets):
                    dataset = Dataset(
                        uid=uuid.uuid4(),
                        owner=user,
                        project=project,
                        name=f"data {d}.jsonl",
                        row_count=rng.randint(100, 50_000),
                        size_bytes=rng.randint(10_000, 50_000_000),
                        preview=preview,
                        columns=["instruction", "input", "output"],
                        val_percent=rng.choice([0, 10, 20]),
                    )
                    dataset.file.name = f"datasets/u{user.pk}/{dataset.uid}.jsonl"
                    dataset.save()
                    path = Path(settings.MEDIA_ROOT) / dataset.file.name
                    path.parent.mkdir(parents=True, exist_ok=True)
                    write_jsonl(path, ALPACA_ROWS)
                    DatasetStats.objects.create(
                        dataset=dataset,
                        base_model=model,
                        max_len=512,
                        status="done",
                        rows_done=dataset.row_count,
                        result=stats_result,
                    )
                    made.append(dataset)
                    ids["datasets"].setdefault(user.email, []).append((project.pk, dataset.pk))
                for r in range(runs):
                    status = rng.choices(
                        ["completed", "failed", "cancelled", "running", "queued"],
                        weights=[80, 8, 6, 3, 3],
                    )[0]
                    steps = rng.randint(60, 400)
                    done = steps if status == "completed" else rng.randint(0, steps)
                    if status == "queued":
                        done = 0
                    run = Run.objects.create(
                        owner=user,
                        project=project,
                        dataset=made[r % len(made)],
                        base_model=model,
                        name=f"run {r}",
                        config={**config, "max_steps": steps},
                        status=status,
                        step=done,
                        total_steps=steps,
                        loss=0.5 if done else None,
                        tokens_per_second=150.0 if done else None,
                        started=now if status != "queued" else None,
                        finished=now if status in ("completed", "failed", "cancelled") else None,
                    )
                    ids["runs"].setdefault(user.email, []).append(run.pk)
                    RunMetric.objects.bulk_create(
                        RunMetric(
                            run=run,
                            step=s,
                            epoch=s / steps,
                            loss=4.0 * (0.98**s) + rng.random() * 0.1,
                            learning_rate=1e-3,
                            eval_loss=3.0 * (0.99**s) if s % 20 == 0 else None,
                            tokens=512,
                            tokens_per_second=150.0,
                            elapsed_s=s * 1.5,
                        )
                        for s in range(1, done + 1)
                    )
                    RunLog.objects.bulk_create(
                        RunLog(run=run, line=f"step {s}: loss {4.0 * 0.98**s:.3f}")
                        for s in range(1, min(done, 120) + 1)
                    )
    return ids


def count_queries(ids: dict) -> dict[str, int]:
    """SQL queries per page (Django set up): the first user's first objects."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from accounts.models import User

    client = Client(SERVER_NAME="localhost")
    client.force_login(User.objects.get(email=ids["users"][0]))
    counts = {}
    for page, url in urls_of(ids, ids["users"][0], random.Random(1)).items():
        client.get(url)  # warm caches, as a server is
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        counts[page] = len(queries)
    return counts


def urls_of(ids: dict, email: str, rng: random.Random) -> dict[str, str]:
    project = rng.choice(ids["projects"][email])
    project_id, dataset_id = rng.choice(ids["datasets"][email])
    return {
        "project list": "/projects/",
        "project page": f"/projects/{project}/",
        "dataset page": f"/projects/{project_id}/datasets/{dataset_id}/",
        "run page": f"/runs/{rng.choice(ids['runs'][email])}/",
        "catalog": "/models/",
    }


def load(daphne: Daphne, ids: dict, requests_per_page: int, concurrency: int) -> dict:
    """Closed loop: ``concurrency`` clients, each waiting for its answer before the next."""
    emails = ids["users"]
    sessions = {email: logged_in(daphne.url, email) for email in emails}
    lock = threading.Lock()
    jobs = [(page, i) for page in PAGES for i in range(requests_per_page)]
    random.Random(2).shuffle(jobs)
    times: dict[str, list[float]] = {page: [] for page in PAGES}

    def one(job):
        page, i = job
        rng = random.Random(i * 7919 + hash(page) % 1000)
        email = emails[i % len(emails)]
        url = urls_of(ids, email, rng)[page]
        started = time.perf_counter()
        answer = sessions[email].get(daphne.url + url)
        elapsed = time.perf_counter() - started
        if answer.status_code != 200:
            raise SystemExit(f"{url}: {answer.status_code}")
        with lock:
            times[page].append(elapsed * 1000)

    for email in emails[: concurrency * 2]:  # warm up
        for url in urls_of(ids, email, random.Random(0)).values():
            sessions[email].get(daphne.url + url)
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, jobs))
    return {
        page: {
            "p50": statistics.median(values),
            "p95": statistics.quantiles(values, n=20, method="inclusive")[18],
        }
        for page, values in times.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--projects", type=int, default=20)
    parser.add_argument("--datasets", type=int, default=3)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--requests", type=int, default=200, help="per page and setting")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--data-dir", type=Path, help="reuse a seeded data directory")
    args = parser.parse_args()
    data_dir = args.data_dir or new_data_dir()
    env = lab_env(data_dir)
    ids_file = data_dir / "bench-ids.json"
    if not ids_file.exists():
        migrate(env)
        started = time.monotonic()
        django_script(
            env,
            "import json\nfrom bench.pages import seed\n"
            f"ids = seed({args.users}, {args.projects}, {args.datasets}, {args.runs})\n"
            f"open({str(ids_file)!r}, 'w').write(json.dumps(ids))\n",
        )
        print(f"seeded {data_dir} in {time.monotonic() - started:.0f} s", flush=True)
    ids = json.loads(ids_file.read_text())
    queries = json.loads(
        django_script(
            env,
            "import json\nfrom bench.pages import count_queries\n"
            f"print(json.dumps(count_queries(json.load(open({str(ids_file)!r})))))\n",
        )
        .strip()
        .splitlines()[-1]
    )
    daphne = Daphne(env)
    try:
        alone = load(daphne, ids, args.requests, 1)
        loaded = load(daphne, ids, args.requests, args.concurrency)
    finally:
        daphne.stop()
    print()
    print(
        f"| page | SQL queries | p50 / p95 ms, 1 in flight | "
        f"p50 / p95 ms, {args.concurrency} in flight |"
    )
    print("| --- | --- | --- | --- |")
    for page in PAGES:
        a, b = alone[page], loaded[page]
        print(
            f"| {page} | {queries[page]} | {a['p50']:.1f} / {a['p95']:.1f} | "
            f"{b['p50']:.1f} / {b['p95']:.1f} |"
        )


if __name__ == "__main__":
    main()
