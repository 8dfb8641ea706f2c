"""Run results as documents for scripts (see README "Run results as JSON")."""

from __future__ import annotations

from evaluations.documents import evaluation_document
from training.engine.design.counts import total_parameters
from training.engine.design.spec import Design
from training.models import Run

# The version of the document's shape (docs/schema/run.schema.json): raised when a field
# changes meaning or goes away; new fields keep it.
SCHEMA_VERSION = 1


def _pretraining(run: Run) -> dict | None:
    if not run.is_pretraining:
        return None
    design = run.config.get("design") or {}
    return {
        "design": design,
        "design_id": run.design_id,
        "tokenizer": run.tokenizer_id,
        "parameters": total_parameters(Design.from_dict(design)) if design else 0,
        "mfu": run.mfu,
        "samples": [{"step": s.step, "text": s.text} for s in run.samples.all()],
    }


def run_document(run: Run) -> dict:
    """The JSON document of one run: settings, progress, results and the whole curve."""
    return {
        "schema_version": SCHEMA_VERSION,
        "id": run.pk,
        "name": run.name,
        "project": run.project_id,
        "status": run.status,
        "error": run.error or None,
        "base_model": run.base_model.name if run.base_model else None,
        "kind": run.kind,
        "base_run": run.base_run_id,
        "pretraining": _pretraining(run),
        "dataset": {"id": run.dataset_id, "name": run.dataset.name, "rows": run.dataset.row_count},
        "config": run.config,
        "progress": {"step": run.step, "total_steps": run.total_steps, "epoch": run.epoch},
        "final_loss": run.loss,
        "eval_loss": run.eval_loss,
        "base_eval_loss": run.base_eval_loss,
        "tokens_per_second": run.tokens_per_second,
        "train_tokens": run.train_tokens,
        "memory_mb": {"cpu_peak_rss": run.cpu_peak_rss_mb, "gpu_peak": run.gpu_peak_mb},
        "worker": run.worker_device or None,
        "crash_resumes": run.crash_resumes,
        "time_limit_s": run.time_limit_s,
        "checkpoints": [c.step for c in run.checkpoints],
        "created": run.created.isoformat(),
        "started": run.started.isoformat() if run.started else None,
        "first_metric": run.first_metric_at.isoformat() if run.first_metric_at else None,
        "finished": run.finished.isoformat() if run.finished else None,
        "duration_s": run.duration_s,
        "evaluations": [evaluation_document(e, with_rows=False) for e in run.evaluations.all()],
        "metrics": [
            {
                "step": m.step,
                "epoch": m.epoch,
                "loss": m.loss,
                "eval_loss": m.eval_loss,
                "learning_rate": m.learning_rate,
                "tokens_per_second": m.tokens_per_second,
                "elapsed_s": m.elapsed_s,
            }
            for m in run.metrics.all()
        ],
    }
