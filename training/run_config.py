"""A run's row as the engine's RunConfig: its settings plus the paths only the lab knows."""

from __future__ import annotations

from training.engine.config import RunConfig
from training.models import Run


def engine_config(run: Run) -> RunConfig:
    return RunConfig.from_dict(
        {
            **run.config,
            **run.dataset.engine_options(),
            "model_dir": run.base_path,
            "dataset_path": run.dataset.file.path,
            "output_dir": str(run.output_dir),
            "time_limit_s": float(run.time_limit_s),
        }
    )
