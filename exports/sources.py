"""What an export of a run writes, read without torch (the web process decides with it)."""

from __future__ import annotations

from pathlib import Path

from training.engine.export.support import GgufExportError, gguf_config
from training.models import Run


def export_model_dir(run: Run) -> Path:
    """The full model an export writes: a pretraining run's own, else the run's base."""
    return run.model_dir if run.is_pretraining else Path(run.base_path)


def exportable(run: Run) -> bool:
    """A fine-tune that saved its adapter, or a pretraining run that saved its model."""
    return run.has_model if run.is_pretraining else run.has_adapter


def gguf_refusal(run: Run) -> str:
    """Why this run's model cannot be written as GGUF ('' when it can), for the page."""
    try:
        gguf_config(export_model_dir(run))
    except GgufExportError as exc:
        return str(exc)
    return ""
