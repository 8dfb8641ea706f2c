"""Runs' evaluation results as the runs table and comparisons show them: the newest
finished evaluation of each run (evaluations app), its tuned score per metric."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from evaluations.models import Evaluation
from slmlab.jobs import JobStatus


def with_evaluations(runs: QuerySet) -> QuerySet:
    """Runs with their finished evaluations, newest first, as ``done_evaluations``."""
    finished = Evaluation.objects.filter(status=JobStatus.DONE).order_by("-finished", "-pk")
    return runs.prefetch_related(Prefetch("evaluations", finished, to_attr="done_evaluations"))


def latest_summary(run) -> dict:
    done = getattr(run, "done_evaluations", None)
    if done is None:
        done = list(run.evaluations.filter(status=JobStatus.DONE).order_by("-finished", "-pk"))
    return done[0].summary if done and done[0].summary else {}


def headline(run) -> dict | None:
    """The first pass/fail metric of the newest evaluation (else its first metric):
    {label, tuned, base} as fractions or scores; None without an evaluation."""
    metrics = latest_summary(run).get("metrics") or []
    if not metrics:
        return None
    chosen = next((m for m in metrics if m.get("kind") == "pass"), metrics[0])
    tuned = (chosen.get("tuned") or {}).get("mean")
    return {
        "label": chosen["label"],
        "kind": chosen.get("kind"),
        "tuned": tuned,
        "base": chosen["base"]["mean"],
        "significant": bool((chosen.get("test") or {}).get("significant")),
    }


def score_rows(runs: list) -> list[dict]:
    """One row per metric any of ``runs`` was evaluated on: each run's tuned score (None
    where it has none), and the best of them in the metric's better direction."""
    per_run = [{m["name"]: m for m in latest_summary(run).get("metrics") or []} for run in runs]
    names: list[str] = []
    for metrics in per_run:
        names += [n for n in metrics if n not in names]
    rows = []
    for name in names:
        entries = [metrics.get(name) for metrics in per_run]
        values = [(e.get("tuned") or e["base"])["mean"] if e is not None else None for e in entries]
        label = next(e["label"] for e in entries if e is not None)
        better = next(e.get("higher_is_better") for e in entries if e is not None)
        numbers = [v for v in values if v is not None]
        best = None
        if len(numbers) > 1 and better is not None:
            best = max(numbers) if better else min(numbers)
        rows.append({"label": label, "values": values, "best": best})
    return rows
