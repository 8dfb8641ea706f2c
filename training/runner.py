"""Worker-side glue between the database and the engine (training/engine/)."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
from pathlib import Path

from django.utils import timezone

from training import events, services
from training.engine import checkpoint
from training.engine.config import RunConfig
from training.engine.train import CANCEL, LOST, SHUTDOWN, StepMetrics, train
from training.mlflow_log import MlflowLogger
from training.models import ChatExchange, Run, RunLog, RunMetric
from training.scheduling import claim_next

logger = logging.getLogger(__name__)
PUSH_INTERVAL_S = 1.0
CANCEL_POLL_S = 0.5
# Set when Dramatiq stops this worker process (SIGTERM): the run checkpoints and goes
# back to the waiting line instead of being lost (training.heartbeat sets it).
SHUTTING_DOWN = threading.Event()


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def engine_config(run: Run) -> RunConfig:
    return RunConfig.from_dict(
        {
            **run.config,
            **run.dataset.engine_options(),
            "model_dir": run.base_model.path,
            "dataset_path": run.dataset.file.path,
            "output_dir": str(run.output_dir),
            "time_limit_s": float(run.time_limit_s),
        }
    )


class RunReporter:
    """Stores every step and log line, and pushes the page at most once a second."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.tensorboard = None
        self.last_push = 0.0
        self.last_cancel_check = 0.0
        self.stop: str | None = None
        self.mlflow = MlflowLogger(run, self.on_log)

    def push(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last_push >= PUSH_INTERVAL_S:
            self.last_push = now
            events.publish_run(self.run.pk)

    def on_log(self, line: str) -> None:
        RunLog.objects.create(run=self.run, line=line)
        self.push()

    def on_metrics(self, m: StepMetrics) -> None:
        RunMetric.objects.update_or_create(
            run=self.run,
            step=m.step,
            defaults={
                "epoch": m.epoch,
                "loss": m.loss,
                "learning_rate": m.learning_rate,
                "grad_norm": m.grad_norm,
                "tokens": m.tokens,
                "tokens_per_second": m.tokens_per_second,
                "elapsed_s": m.elapsed_s,
                "cpu_rss_mb": m.cpu_rss_mb,
                "gpu_mem_mb": m.gpu_mem_mb,
            },
        )
        run = self.run
        first = run.first_metric_at is None
        run.step, run.total_steps, run.epoch, run.loss = m.step, m.total_steps, m.epoch, m.loss
        run.tokens_per_second, run.eta_s = m.tokens_per_second, m.eta_s
        run.train_tokens += m.tokens
        run.cpu_rss_mb, run.cpu_peak_rss_mb = m.cpu_rss_mb, m.cpu_peak_rss_mb
        run.gpu_mem_mb, run.gpu_peak_mb = m.gpu_mem_mb, m.gpu_peak_mb
        fields = [
            "step",
            "total_steps",
            "epoch",
            "loss",
            "tokens_per_second",
            "eta_s",
            "train_tokens",
            "cpu_rss_mb",
            "cpu_peak_rss_mb",
            "gpu_mem_mb",
            "gpu_peak_mb",
        ]
        if first:
            run.first_metric_at = timezone.now()
            fields.append("first_metric_at")
        run.save(update_fields=fields)
        self.log_tensorboard(m)
        self.push(force=first)

    def on_eval(self, step: int, loss: float) -> None:
        """Step 0 is the base model's validation loss; later ones go on that step's row."""
        run = self.run
        if step == 0:
            run.base_eval_loss = loss
            run.save(update_fields=["base_eval_loss"])
        else:
            RunMetric.objects.filter(run=run, step=step).update(eval_loss=loss)
            run.eval_loss = loss
            run.save(update_fields=["eval_loss"])
        self.scalars(step, {"eval/loss": loss})
        self.push(force=True)

    def log_tensorboard(self, m: StepMetrics) -> None:
        """TensorBoard event files per run (downloadable from the run page)."""
        scalars = {
            "train/loss": m.loss,
            "train/learning_rate": m.learning_rate,
            "train/grad_norm": m.grad_norm,
            "train/tokens_per_second": m.tokens_per_second,
            "memory/cpu_rss_mb": m.cpu_rss_mb,
            "memory/gpu_mb": m.gpu_mem_mb,
        }
        self.scalars(m.step, scalars)

    def scalars(self, step: int, scalars: dict[str, float | None]) -> None:
        """The same scalars to TensorBoard and, when configured, MLflow."""
        if self.tensorboard is None:
            from torch.utils.tensorboard import SummaryWriter

            self.tensorboard = SummaryWriter(log_dir=str(self.run.output_dir / "tensorboard"))
        for tag, value in scalars.items():
            if value is not None:
                self.tensorboard.add_scalar(tag, value, step)
        self.mlflow.log_step(step, scalars)

    def close(self, status: str) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()
        self.mlflow.end(status)

    def should_stop(self) -> str | None:
        """Cancel requested, worker shutting down, or the run taken over (see engine)."""
        if SHUTTING_DOWN.is_set():
            return SHUTDOWN
        now = time.monotonic()
        if self.stop is None and now - self.last_cancel_check >= CANCEL_POLL_S:
            self.last_cancel_check = now
            row = (
                Run.objects.filter(pk=self.run.pk)
                .values("status", "worker", "cancel_requested")
                .first()
            )
            ours = row is not None and row["status"] == Run.Status.RUNNING
            if not ours or row["worker"] != self.run.worker:
                self.stop = LOST  # thought dead and reaped; another worker resumes it
            elif row["cancel_requested"]:
                self.stop = CANCEL
        return self.stop


def execute_next(trigger_run_id: int) -> None:
    """Train the fairest eligible queued run, if any (one message = one free worker)."""
    run = claim_next(worker_name())
    if run is None:
        logger.info("token from run %s: nothing may start now", trigger_run_id)
        return
    train_claimed(Run.objects.select_related("base_model", "dataset").get(pk=run.pk))


def execute_run(run_id: int) -> None:
    """Train this run if it can still be claimed (a duplicate delivery gets nothing)."""
    run = Run.objects.select_related("base_model", "dataset").filter(pk=run_id).first()
    if run is None or not run.claim(worker_name()):
        logger.info("run %s: not claimable (gone, taken or cancelled); skipping", run_id)
        return
    train_claimed(run)


def train_claimed(run: Run) -> None:
    try:
        _train(run)
    finally:
        services.release_slot(run.pk)


def _train(run: Run) -> None:
    reporter = RunReporter(run)
    saved = checkpoint.latest(run.output_dir)
    run.rewind_to(saved.step if saved else 0)
    if saved is not None:
        reporter.on_log(f"worker {run.worker} resumes from checkpoint step {saved.step}")
    else:
        reporter.on_log(f"claimed by worker {run.worker}")
    try:
        result = train(
            engine_config(run),
            on_metrics=reporter.on_metrics,
            on_log=reporter.on_log,
            should_stop=reporter.should_stop,
            resume_from=saved,
            on_eval=reporter.on_eval,
        )
    except Exception as exc:
        reporter.close("failed")
        logger.exception("run %s failed", run.pk)
        RunLog.objects.create(run=run, line="".join(traceback.format_exception_only(exc)).strip())
        run.finish(Run.Status.FAILED, error=f"{type(exc).__name__}: {exc}")
        events.publish_run(run.pk)
        return
    reporter.close("timed_out" if result.status == "time_limit" else result.status)
    if result.status == "lost":
        logger.warning("run %s was taken over by another worker; stopped", run.pk)
        return
    if result.status == "completed":
        run.finish(Run.Status.COMPLETED)
        RunLog.objects.create(run=run, line="run completed")
    elif result.status == "time_limit":
        limit = _duration(run.time_limit_s)
        run.finish(Run.Status.TIMED_OUT, error=f"time limit of {limit} reached")
        RunLog.objects.create(
            run=run,
            line=f"time limit reached at step {result.steps}/{run.total_steps}; "
            "adapter and checkpoint saved",
        )
    elif result.status == "interrupted":
        where = f"checkpoint step {result.steps}" if result.steps else "the start"
        run.stop_to_resume(run.worker, f"worker {run.worker} stopped; resumes from {where}")
        RunLog.objects.create(run=run, line=f"worker stopping: run resumes from {where}")
    else:
        run.finish(Run.Status.CANCELLED)
        RunLog.objects.create(run=run, line=f"run cancelled; stopped at step {result.steps}")
    reporter.push(force=True)


def _duration(seconds: int) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:g} h"
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds} s"


# One loaded model per worker process: consecutive chats with the same run reuse it.
_chat_cache: dict[str, object] = {}


def _chat_model(run: Run):
    """The run's base model with its adapter, prompted with the template it trained on."""
    from training.engine.chat import ChatModel

    template, custom = run.dataset.template, run.dataset.custom_template
    key = f"{run.base_model.path}|{run.adapter_dir}|{template}|{custom}"
    if key not in _chat_cache:
        _chat_cache.clear()
        _chat_cache[key] = ChatModel(
            Path(run.base_model.path), run.adapter_dir, template=template, custom_template=custom
        )
    return _chat_cache[key]


def answer_chat(exchange_id: int) -> None:
    exchange = (
        ChatExchange.objects.select_related("run__base_model", "run__dataset")
        .filter(pk=exchange_id)
        .first()
    )
    if exchange is None or exchange.status != ChatExchange.Status.PENDING:
        return
    run = exchange.run
    try:
        model = _chat_model(run)
        answers = model.compare(
            exchange.messages(),
            max_new_tokens=exchange.max_new_tokens,
            temperature=exchange.temperature,
            top_p=exchange.top_p,
        )
    except Exception as exc:
        logger.exception("chat %s failed", exchange_id)
        exchange.status = ChatExchange.Status.FAILED
        exchange.error = f"{type(exc).__name__}: {exc}"
        exchange.save(update_fields=["status", "error"])
    else:
        exchange.base_answer = answers["base"]
        exchange.tuned_answer = answers["tuned"]
        exchange.status = ChatExchange.Status.DONE
        exchange.save(update_fields=["base_answer", "tuned_answer", "status"])
    events.publish_chats(run.pk)


def run_summary(run: Run) -> dict:
    """The JSON document scripts read for one run (see README "Run results as JSON")."""
    return {
        "id": run.pk,
        "name": run.name,
        "project": run.project_id,
        "status": run.status,
        "error": run.error or None,
        "base_model": run.base_model.name,
        "dataset": {"id": run.dataset_id, "name": run.dataset.name, "rows": run.dataset.row_count},
        "config": run.config,
        "progress": {"step": run.step, "total_steps": run.total_steps, "epoch": run.epoch},
        "final_loss": run.loss,
        "eval_loss": run.eval_loss,
        "base_eval_loss": run.base_eval_loss,
        "tokens_per_second": run.tokens_per_second,
        "train_tokens": run.train_tokens,
        "memory_mb": {"cpu_peak_rss": run.cpu_peak_rss_mb, "gpu_peak": run.gpu_peak_mb},
        "worker": run.worker or None,
        "crash_resumes": run.crash_resumes,
        "time_limit_s": run.time_limit_s,
        "checkpoints": [c.step for c in run.checkpoints],
        "created": run.created.isoformat(),
        "started": run.started.isoformat() if run.started else None,
        "first_metric": run.first_metric_at.isoformat() if run.first_metric_at else None,
        "finished": run.finished.isoformat() if run.finished else None,
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
