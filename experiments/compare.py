"""Runs side by side: curves on shared axes, the settings that differ, the results."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from experiments.scores import score_rows
from slmlab.charts import overlay_chart
from training.models import Run

MIN_RUNS, MAX_RUNS = 2, 8
SMOOTHING_CHOICES = (0.0, 0.6, 0.8, 0.9, 0.95)
# Settings that describe a run's machine or files, not the experiment.
NOT_COMPARED = {"log_every", "checkpoint_every", "keep_checkpoints"}


class CompareError(ValueError):
    """A comparison that cannot be drawn, with the reason for the user."""


def parse_run_ids(raw: list[str]) -> list[int]:
    """Run ids from ``?runs=1,2&runs=3`` in the order given, each once."""
    ids: list[int] = []
    for chunk in raw:
        for part in chunk.split(","):
            part = part.strip()
            if not part:
                continue
            if not part.isdigit():
                raise CompareError(_("“%(part)s” is not a run number.") % {"part": part})
            if int(part) not in ids:
                ids.append(int(part))
    if not MIN_RUNS <= len(ids) <= MAX_RUNS:
        raise CompareError(
            _("Pick %(low)d to %(high)d runs to compare (%(n)d given).")
            % {"low": MIN_RUNS, "high": MAX_RUNS, "n": len(ids)}
        )
    return ids


def smooth(points: list[tuple[int, float]], weight: float) -> list[tuple[int, float]]:
    """Exponential moving average with bias correction (as TensorBoard's slider), so the
    first points are not pulled towards zero."""
    if weight <= 0:
        return list(points)
    out, average = [], 0.0
    for i, (step, value) in enumerate(points, start=1):
        average = weight * average + (1 - weight) * value
        out.append((step, average / (1 - weight**i)))
    return out


def config_diff(runs: list[Run]) -> list[dict]:
    """The settings whose values are not the same in every run: one row each."""
    keys = sorted({key for run in runs for key in (run.config or {})} - NOT_COMPARED)
    rows = []
    for key in keys:
        values = [(run.config or {}).get(key) for run in runs]
        if any(v != values[0] for v in values[1:]):
            rows.append({"key": key, "values": values})
    for label, get in ((_("base model"), lambda r: str(r.base_name)), (_("dataset"), _dataset)):
        values = [get(run) for run in runs]
        if any(v != values[0] for v in values[1:]):
            rows.insert(0, {"key": label, "values": values})
    return rows


def _dataset(run: Run) -> str:
    return f"{run.dataset.name} (#{run.dataset_id})"


@dataclass
class Comparison:
    runs: list[Run]
    smoothing: float
    train_chart: dict
    eval_chart: dict
    diff: list[dict]
    results: list[dict]
    scores: list[dict]


RESULT_ROWS = (
    (gettext_lazy("final training loss"), "loss"),
    (gettext_lazy("validation loss"), "eval_loss"),
    (gettext_lazy("base model's validation loss"), "base_eval_loss"),
    (gettext_lazy("tokens/s"), "tokens_per_second"),
    (gettext_lazy("duration (s)"), "duration_s"),
    (gettext_lazy("peak memory (MB)"), "cpu_peak_rss_mb"),
)


def compare(runs: list[Run], smoothing: float) -> Comparison:
    train, evals = [], []
    for run in runs:
        rows = list(run.metrics.values_list("step", "loss", "eval_loss"))
        train.append(smooth([(s, v) for s, v, _ in rows], smoothing))
        points = [(s, v) for s, _, v in rows if v is not None]
        if points and run.base_eval_loss is not None:
            points.insert(0, (0, run.base_eval_loss))
        evals.append(points)
    results = []
    for label, attribute in RESULT_ROWS:
        values = [getattr(run, attribute) for run in runs]
        numbers = [v for v in values if v is not None]
        best = None
        if len(numbers) > 1 and attribute in ("loss", "eval_loss"):
            best = min(numbers)
        results.append({"label": label, "values": values, "best": best})
    return Comparison(
        runs=runs,
        smoothing=smoothing,
        train_chart=overlay_chart(train),
        eval_chart=overlay_chart(evals),
        diff=config_diff(runs),
        results=results,
        scores=score_rows(runs),
    )
