"""Run results as documents for scripts: one run, a project's runs or all of a user's,
as JSON (following ``docs/schema/run.schema.json``) and as CSV (one row per run)."""

from __future__ import annotations

import json
from pathlib import Path

from training.documents import SCHEMA_VERSION, run_document
from training.models import Run

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "docs" / "schema" / "run.schema.json"

# CSV columns: the table's summary, then the settings a comparison needs.
CSV_COLUMNS = [
    ("id", lambda r: r.pk),
    ("name", lambda r: r.name),
    ("project", lambda r: r.project_id),
    ("status", lambda r: r.status),
    ("base_model", lambda r: r.base_model.name if r.base_model else None),
    ("dataset", lambda r: r.dataset.name),
    ("dataset_rows", lambda r: r.dataset.row_count),
    ("step", lambda r: r.step),
    ("total_steps", lambda r: r.total_steps),
    ("final_loss", lambda r: r.loss),
    ("eval_loss", lambda r: r.eval_loss),
    ("base_eval_loss", lambda r: r.base_eval_loss),
    ("tokens_per_second", lambda r: r.tokens_per_second),
    ("duration_s", lambda r: r.duration_s),
    ("cpu_peak_rss_mb", lambda r: r.cpu_peak_rss_mb),
    ("gpu_peak_mb", lambda r: r.gpu_peak_mb),
    ("created", lambda r: r.created.isoformat()),
    ("finished", lambda r: r.finished.isoformat() if r.finished else None),
    ("kind", lambda r: r.kind),
    ("base_run", lambda r: r.base_run_id),
]
CONFIG_COLUMNS = [
    "quantization",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "learning_rate",
    "epochs",
    "max_steps",
    "batch_size",
    "grad_accum",
    "max_seq_len",
    "lr_scheduler",
    "optimizer",
    "seed",
]


def schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


def runs_document(runs, scope: dict) -> dict:
    """Several runs as one document: what they are (``scope``) and each run's document."""
    return {
        "schema_version": SCHEMA_VERSION,
        **scope,
        "runs": [run_document(run) for run in runs],
    }


def csv_header() -> list[str]:
    return [name for name, _ in CSV_COLUMNS] + [f"config.{key}" for key in CONFIG_COLUMNS]


def csv_row(run: Run) -> list[object]:
    config = run.config or {}
    return [get(run) for _, get in CSV_COLUMNS] + [config.get(key) for key in CONFIG_COLUMNS]


def documented_runs(queryset):
    """Runs with what their documents read, in few queries."""
    return queryset.select_related("base_model", "base_run", "dataset").prefetch_related("metrics")
