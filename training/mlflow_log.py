"""MLflow logging for labs that run a tracking server (MLFLOW_TRACKING_URI).

One MLflow run per lab run: its id is kept in the run folder, so a run resumed after
a crash or a worker restart goes on logging into the same MLflow run. MLflow being
down never stops training: the first error is logged on the run page and MLflow is
skipped for the rest of that attempt.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)
RUN_ID_FILE = "mlflow_run_id"
FINAL_STATUS = {"completed": "FINISHED", "timed_out": "FINISHED", "cancelled": "KILLED"}


class MlflowLogger:
    def __init__(self, run: Any, log_line: Callable[[str], None]) -> None:
        self.run = run
        self.log_line = log_line
        self.client: Any = None
        self.run_id: str | None = None
        self.broken = not settings.MLFLOW_TRACKING_URI

    def _guard(self, action: Callable[[], None]) -> None:
        if self.broken:
            return
        try:
            action()
        except Exception as exc:
            self.broken = True
            logger.exception("MLflow logging failed for run %s", self.run.pk)
            self.log_line(f"MLflow logging stopped: {type(exc).__name__}: {exc}")

    def _start(self) -> None:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=settings.MLFLOW_TRACKING_URI)
        id_file = self.run.output_dir / RUN_ID_FILE
        if id_file.exists():
            self.run_id = id_file.read_text().strip()
            self.client.update_run(self.run_id, status="RUNNING")
            return
        name = settings.MLFLOW_EXPERIMENT
        experiment = self.client.get_experiment_by_name(name)
        experiment_id = (
            experiment.experiment_id if experiment else self.client.create_experiment(name)
        )
        created = self.client.create_run(
            experiment_id,
            run_name=f"{self.run.pk}: {self.run.name}",
            tags={
                "slmlab.run_id": str(self.run.pk),
                "slmlab.owner": self.run.owner.email,
                "slmlab.project": self.run.project.name,
                "slmlab.base_model": str(self.run.base_name),
                "slmlab.kind": self.run.kind,
                "slmlab.dataset": self.run.dataset.name,
            },
        )
        self.run_id = created.info.run_id
        params = [Param(k, str(v)[:500]) for k, v in sorted(self.run.config.items())]
        self.client.log_batch(self.run_id, params=params)
        self.run.output_dir.mkdir(parents=True, exist_ok=True)
        id_file.write_text(self.run_id)

    def log_step(self, step: int, values: dict[str, float | None]) -> None:
        def action() -> None:
            from mlflow.entities import Metric

            if self.run_id is None:
                self._start()
            now = int(time.time() * 1000)
            metrics = [Metric(k, v, now, step) for k, v in values.items() if v is not None]
            self.client.log_batch(self.run_id, metrics=metrics)

        self._guard(action)

    def end(self, status: str) -> None:
        """Final lab status → MLflow status; an interrupted run stays RUNNING (it resumes)."""
        if self.run_id is None or status in ("interrupted", "lost"):
            return
        mlflow_status = FINAL_STATUS.get(status, "FAILED")
        self._guard(lambda: self.client.set_terminated(self.run_id, status=mlflow_status))
