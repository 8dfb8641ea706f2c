"""Training on a worker: the glue between Run rows and the engine's training loop."""

from __future__ import annotations

import logging
import time

from django.utils import timezone

from evaluations.jobs.end_of_run import queue_end_of_run
from training import events
from training.capacity import Device, capacity_for, worker_report
from training.engine.train import checkpoint
from training.engine.train.loop import OutOfMemory, StepMetrics, TrainHooks, train
from training.engine.train.outcome import Outcome
from training.engine.train.peak import device_peak_flops, mfu
from training.jobs.pretrain import flops_per_token, pretrain_claimed
from training.mlflow_log import MlflowLogger
from training.models import Run, RunLog, RunMetric, RunSample, Worker
from training.retention import after_run_ended
from training.run_config import engine_config
from training.scheduling import claim_next
from training.workers import SHUTTING_DOWN, worker_name

logger = logging.getLogger(__name__)
PUSH_INTERVAL_S = 1.0
CANCEL_POLL_S = 0.5
# How often a training run's folder is counted again for the storage quota.
MEASURE_DISK_S = 60.0


class RunReporter:
    """The engine's hooks for one run: stores every step and log line, pushes the page at
    most once a second, and answers whether to stop."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.tensorboard = None
        self.last_push = 0.0
        self.last_cancel_check = 0.0
        self.last_measure = time.monotonic()
        self.stop: Outcome | None = None
        self.mlflow = MlflowLogger(run, self.on_log)
        # A pretraining run's MFU: its design's exact FLOPs per token against the peak.
        self.flops_per_token = flops_per_token(run) if run.is_pretraining else None
        self.peak_flops: float | None = None

    def hooks(self) -> TrainHooks:
        return TrainHooks(
            on_metrics=self.on_metrics,
            on_log=self.on_log,
            should_stop=self.should_stop,
            on_eval=self.on_eval,
        )

    def push(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last_push >= PUSH_INTERVAL_S:
            self.last_push = now
            events.publish_run(self.run.pk)

    def on_log(self, line: str) -> None:
        RunLog.objects.create(run=self.run, line=line)
        self.push()

    def on_metrics(self, m: StepMetrics) -> None:
        now = time.monotonic()
        if now - self.last_measure >= MEASURE_DISK_S:  # checkpoints written meanwhile
            self.last_measure = now
            self.run.measure_disk()
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
        run.mfu = self.mfu(m.tokens_per_second)
        run.train_tokens += m.tokens
        run.cpu_rss_mb, run.cpu_peak_rss_mb = m.cpu_rss_mb, m.cpu_peak_rss_mb
        run.gpu_mem_mb, run.gpu_peak_mb = m.gpu_mem_mb, m.gpu_peak_mb
        fields = [
            "step",
            "total_steps",
            "epoch",
            "loss",
            "tokens_per_second",
            "mfu",
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
        self.scalars(
            m.step,
            {
                "train/loss": m.loss,
                "train/learning_rate": m.learning_rate,
                "train/grad_norm": m.grad_norm,
                "train/tokens_per_second": m.tokens_per_second,
                "train/mfu": run.mfu,
                "memory/cpu_rss_mb": m.cpu_rss_mb,
                "memory/gpu_mb": m.gpu_mem_mb,
            },
        )
        self.push(force=first)

    def mfu(self, tokens_per_second: float) -> float | None:
        if self.flops_per_token is None:
            return None
        if self.peak_flops is None:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
            self.peak_flops = device_peak_flops(device, bf16=device == "cuda") or 0.0
        return mfu(self.flops_per_token, tokens_per_second, self.peak_flops)

    def on_sample(self, step: int, text: str) -> None:
        """Text the model wrote at ``step``: shown on the run page at once."""
        RunSample.objects.update_or_create(
            run=self.run,
            step=step,
            defaults={"prompt": self.run.config.get("sample_prompt", ""), "text": text},
        )
        self.push(force=True)

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

    def scalars(self, step: int, scalars: dict[str, float | None]) -> None:
        """The same scalars to TensorBoard (downloadable from the run page) and MLflow."""
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
        self.run.measure_disk()  # adapter and checkpoints count in the owner's quota

    def should_stop(self) -> Outcome | None:
        """Worker shutting down, cancel requested, or the run taken over by another worker."""
        if SHUTTING_DOWN.is_set():
            return Outcome.INTERRUPTED
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
                self.stop = Outcome.LOST  # thought dead and reaped; another worker resumes it
            elif row["cancel_requested"]:
                self.stop = Outcome.CANCELLED
        return self.stop


def claim_next_run() -> Run | None:
    """Claim the fairest eligible queued run for this worker, if any may start now."""
    run = claim_next(worker_name())
    if run is None:
        return None
    return Run.objects.select_related(
        "base_model", "base_run", "tokenizer", "dataset", "owner", "project"
    ).get(pk=run.pk)


def train_claimed(run: Run) -> None:
    """Train a run this worker has claimed, to its end (or to its hand-back)."""
    reporter = RunReporter(run)
    saved = checkpoint.latest(run.output_dir)
    run.rewind_to(saved.step if saved else 0)
    if saved is not None:
        reporter.on_log(f"resumes from checkpoint step {saved.step} on {run.worker_device}")
    else:
        reporter.on_log(f"claimed by a worker: {run.worker_device}")
    try:
        result = _train(run, reporter, saved)
    except Exception as exc:
        reporter.close(Run.Status.FAILED)
        logger.exception("run %s failed", run.pk)
        reason = run.public_text(f"{type(exc).__name__}: {exc}")
        if isinstance(exc, OutOfMemory):
            reason += _estimate_note(run)
        RunLog.objects.create(run=run, line=reason)
        run.finish(Run.Status.FAILED, error=reason)
        after_run_ended(run)
        events.publish_run(run.pk)
        return
    outcome = result.status
    reporter.close(outcome)
    if outcome == Outcome.LOST:
        logger.warning("run %s was taken over by another worker; stopped", run.pk)
        return
    error, line = _ending(run, outcome, result.steps)
    run.end(outcome, error)
    RunLog.objects.create(run=run, line=line)
    if outcome.saves_adapter and not run.is_pretraining:
        queued = queue_end_of_run(run)
        if queued is not None:
            RunLog.objects.create(
                run=run, line=f"evaluation {queued.pk} queued: base vs tuned on validation rows"
            )
    if after_run_ended(run):
        RunLog.objects.create(run=run, line="dataset file deleted after training, as asked")
    reporter.push(force=True)


def _train(run: Run, reporter: RunReporter, saved: checkpoint.Checkpoint | None):
    """The engine's loop for the run's kind: the same Trainer, hooks and checkpoints."""
    if run.is_pretraining:
        return pretrain_claimed(run, reporter.hooks(), reporter.on_sample, saved)
    return train(engine_config(run), reporter.hooks(), resume_from=saved)


def _estimate_note(run: Run) -> str:
    """The memory estimate of the run's settings, beside a measured out-of-memory."""
    try:
        worker = Worker.objects.filter(name=run.worker).first()
        device = Device(worker_report(worker), 1) if worker else None
        capacity = (
            capacity_for(run.base_path, run.config, device) if not run.is_pretraining else None
        )
    except Exception:  # the estimate is a hint; the failure is the message
        return ""
    if capacity is None:
        return ""
    return (
        f" (the estimate for these settings was {capacity.estimate.total_mb:.0f} MB; "
        f"{capacity.device.name} has {capacity.device.memory_mb:.0f} MB)"
    )


def _ending(run: Run, outcome: Outcome, steps: int) -> tuple[str, str]:
    """(the run's error text, the last log line) for how a training attempt ended."""
    if outcome == Outcome.COMPLETED:
        return "", "run completed"
    if outcome == Outcome.TIMED_OUT:
        limit = _duration(run.time_limit_s)
        return (
            f"time limit of {limit} reached",
            f"time limit reached at step {steps}/{run.total_steps}; "
            f"{'model' if run.is_pretraining else 'adapter'} and checkpoint saved",
        )
    if outcome == Outcome.INTERRUPTED:
        where = f"checkpoint step {steps}" if steps else "the start"
        return (
            f"its worker was stopped; resumes from {where}",
            f"worker stopping: run resumes from {where}",
        )
    return "", f"run cancelled; stopped at step {steps}"


def _duration(seconds: int) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:g} h"
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds} s"
