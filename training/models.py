import logging
import math
from pathlib import Path

from django.conf import settings
from django.db import models, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from projects.models import BaseModel, Dataset, Project
from slmlab.jobs import Job, Transitions
from training.engine.models.folders import folder_bytes
from training.engine.train import checkpoint
from training.engine.train.outcome import Outcome

logger = logging.getLogger(__name__)


class Run(Transitions, models.Model):
    """One training run: a LoRA fine-tune of a model, or the pretraining of a design.

    A fine-tune starts from a store model (``base_model``) or from the model one of the
    owner's pretraining runs produced (``base_run``). A pretraining run has neither: it
    trains its design (snapshotted in ``config["design"]``; ``design`` only points back
    at the editor's row) from random weights with its tokenizer. Both kinds share the
    queue, the scheduler, the run page, checkpoints, crash resume, cancel and limits.
    The database row is the truth the pages and scripts read.
    """

    class Kind(models.TextChoices):
        FINETUNE = "finetune", _("LoRA fine-tune")
        PRETRAIN = "pretrain", _("pretraining")

    class Status(models.TextChoices):
        QUEUED = "queued", _("queued")
        RUNNING = "running", _("running")
        COMPLETED = "completed", _("completed")
        FAILED = "failed", _("failed")
        CANCELLED = "cancelled", _("cancelled")
        INTERRUPTED = "interrupted", _("interrupted")
        TIMED_OUT = "timed_out", _("time limit reached")

    FINAL = (Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.TIMED_OUT)
    # Waiting for a worker: new runs, and interrupted ones, which resume from their
    # last checkpoint without anyone having to act.
    WAITING = (Status.QUEUED, Status.INTERRUPTED)

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="runs"
    )
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="runs")
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="runs")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.FINETUNE)
    base_model = models.ForeignKey(
        BaseModel, on_delete=models.PROTECT, related_name="runs", null=True, blank=True
    )
    # RESTRICT, not PROTECT: deleting a project or an account takes both runs along.
    base_run = models.ForeignKey(
        "self",
        on_delete=models.RESTRICT,
        related_name="finetunes",
        null=True,
        blank=True,
        help_text=_("The pretraining run whose model this run fine-tunes."),
    )
    design = models.ForeignKey(
        "designer.Design", on_delete=models.SET_NULL, related_name="runs", null=True, blank=True
    )
    tokenizer = models.ForeignKey(
        "designer.TrainedTokenizer",
        on_delete=models.SET_NULL,
        related_name="runs",
        null=True,
        blank=True,
        help_text=_("A pretraining run's tokenizer (copied into the run folder at its start)."),
    )
    name = models.CharField(max_length=200)
    config = models.JSONField(help_text=_("RunConfig fields, without paths"))
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    cancel_requested = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    worker = models.CharField(max_length=200, blank=True)
    crash_resumes = models.PositiveSmallIntegerField(
        default=0, help_text=_("Times this run resumed after its worker died.")
    )
    time_limit_s = models.PositiveIntegerField(
        default=24 * 3600,
        help_text=_("Training seconds after which the run stops with a checkpoint; 0: none."),
    )

    # Latest progress, updated by the worker; the full curve is in RunMetric.
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    epoch = models.FloatField(default=0)
    loss = models.FloatField(null=True, blank=True)
    tokens_per_second = models.FloatField(null=True, blank=True)
    # Model FLOPs utilisation of the latest step (pretraining runs, where the design's
    # FLOPs per token are known exactly), as a share of the worker's peak.
    mfu = models.FloatField(null=True, blank=True)
    eta_s = models.FloatField(null=True, blank=True)
    train_tokens = models.BigIntegerField(default=0)
    cpu_rss_mb = models.FloatField(null=True, blank=True)
    cpu_peak_rss_mb = models.FloatField(null=True, blank=True)
    gpu_mem_mb = models.FloatField(null=True, blank=True)
    gpu_peak_mb = models.FloatField(null=True, blank=True)
    # Bytes of its folder (adapter, checkpoints, TensorBoard), counted in the storage quota.
    disk_bytes = models.BigIntegerField(default=0)
    # Validation loss of the model before training (the base model) and the latest one.
    base_eval_loss = models.FloatField(null=True, blank=True)
    eval_loss = models.FloatField(null=True, blank=True)

    created = models.DateTimeField(auto_now_add=True)
    started = models.DateTimeField(null=True, blank=True)
    first_metric_at = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_status_display()})"

    def get_absolute_url(self) -> str:
        return reverse("training:run", args=[self.pk])

    @property
    def output_dir(self) -> Path:
        return Path(settings.RUNS_DIR) / f"run-{self.pk}"

    @property
    def adapter_dir(self) -> Path:
        return self.output_dir / "adapter"

    @property
    def model_dir(self) -> Path:
        """A pretraining run's model (config, weights, tokenizer): a transformers folder."""
        return self.output_dir / "model"

    @property
    def tokenizer_dir(self) -> Path:
        """A pretraining run's own copy of its tokenizer, taken when it first starts."""
        return self.output_dir / "tokenizer"

    @property
    def is_pretraining(self) -> bool:
        return self.kind == self.Kind.PRETRAIN

    @property
    def base_path(self) -> str:
        """The folder of the model a fine-tune starts from ('' for a pretraining run)."""
        if self.base_model_id is not None:
            return self.base_model.path
        if self.base_run_id is not None:
            return str(self.base_run.model_dir)
        return ""

    @property
    def base_name(self) -> str:
        """What the pages call the model the run starts from."""
        if self.base_model_id is not None:
            return self.base_model.name
        if self.base_run_id is not None:
            return _("%(run)s (pretrained)") % {"run": self.base_run.name}
        return _("%(design)s (from scratch)") % {
            "design": self.config.get("design_name") or _("a design")
        }

    @property
    def context_length(self) -> int:
        """Tokens the model this run trains can attend to (its store model's, or the
        design's it was pretrained with, or started from); 0 when unknown."""
        if self.base_model_id is not None:
            return self.base_model.context_length
        source = self if self.is_pretraining else self.base_run
        design = (source.config or {}).get("design") if source is not None else None
        return int((design or {}).get("context_length") or 0)

    @property
    def has_model(self) -> bool:
        """A pretraining run that saved its model (completed, or stopped at its limit)."""
        return (
            self.is_pretraining
            and self.status in (self.Status.COMPLETED, self.Status.TIMED_OUT)
            and (self.model_dir / "config.json").exists()
        )

    @property
    def perplexity(self) -> float | None:
        if self.eval_loss is None:
            return None
        return math.exp(min(self.eval_loss, 50.0))

    @property
    def is_final(self) -> bool:
        return self.status in self.FINAL

    def measure_disk(self) -> int:
        """Count the run folder's bytes again (after checkpoints are written or deleted)."""
        # Exports (in exports/) are counted as exports, by their own rows.
        exports = self.output_dir / "exports"
        total = folder_bytes(self.output_dir) if self.output_dir.exists() else 0
        self.disk_bytes = total - (folder_bytes(exports) if exports.exists() else 0)
        Run.objects.filter(pk=self.pk).update(disk_bytes=self.disk_bytes)
        return self.disk_bytes

    @property
    def duration_s(self) -> float | None:
        """Seconds from its first start to its end (or to now while it goes on)."""
        if self.started is None:
            return None
        return ((self.finished or timezone.now()) - self.started).total_seconds()

    @property
    def is_active(self) -> bool:
        return self.status in (*self.WAITING, self.Status.RUNNING)

    @property
    def checkpoints(self) -> list[checkpoint.Checkpoint]:
        return checkpoint.list_complete(self.output_dir)

    @property
    def progress_percent(self) -> int:
        if self.status == self.Status.COMPLETED:
            return 100
        if not self.total_steps:
            return 0
        return min(100, round(100 * self.step / self.total_steps))

    @property
    def can_chat(self) -> bool:
        """A fine-tune that completed, or stopped at its time limit: both saved an adapter."""
        return not self.is_pretraining and self.status in (
            self.Status.COMPLETED,
            self.Status.TIMED_OUT,
        )

    @property
    def has_adapter(self) -> bool:
        return (
            self.status in (self.Status.COMPLETED, self.Status.TIMED_OUT)
            and (self.adapter_dir / "adapter_config.json").exists()
        )

    def claim(self, worker: str) -> bool:
        """Move queued/interrupted → running for exactly one worker; a duplicate gets False."""
        claimed = self._move(
            self.WAITING,
            where={"cancel_requested": False},
            status=self.Status.RUNNING,
            worker=worker,
            started=timezone.now(),
        )
        if claimed:
            self.refresh_from_db()
        return claimed

    def request_cancel(self) -> bool:
        """Cancel now if queued; ask the worker to stop if running. False once final."""
        with transaction.atomic():
            run = Run.objects.select_for_update().get(pk=self.pk)
            if run.is_final:
                return False
            if run.status == self.Status.RUNNING:
                run.cancel_requested = True
                run.save(update_fields=["cancel_requested"])
            else:
                run.cancel_requested = True
                run.status = self.Status.CANCELLED
                run.finished = timezone.now()
                run.save(update_fields=["cancel_requested", "status", "finished"])
        self.refresh_from_db()
        return True

    def reset_for_requeue(self) -> bool:
        """Operators: an interrupted run's crash count starts again, and it resumes.

        It goes on from its last checkpoint like any interrupted run; final runs stay
        as they are (see ``retry``).
        """
        with transaction.atomic():
            run = Run.objects.select_for_update().get(pk=self.pk)
            if run.status != self.Status.INTERRUPTED:
                return False
            run.status = self.Status.QUEUED
            run.crash_resumes = 0
            run.error = ""
            run.save(update_fields=["status", "crash_resumes", "error"])
            RunLog.objects.create(run=run, line="requeued by an operator")
        self.refresh_from_db()
        return True

    def rewind_to(self, step: int) -> None:
        """Progress back to ``step`` (a checkpoint's, or 0): later metrics are dropped,
        so the steps the worker trains again are stored once."""
        self.metrics.filter(step__gt=step).delete()
        self.samples.filter(step__gt=step).delete()
        kept = self.metrics.order_by("-step").first()
        evaluated = self.metrics.filter(eval_loss__isnull=False).order_by("-step").first()
        self.step = step
        self.loss = kept.loss if kept else None
        self.epoch = kept.epoch if kept else 0
        self.eval_loss = evaluated.eval_loss if evaluated else None
        self.train_tokens = self.metrics.aggregate(n=models.Sum("tokens"))["n"] or 0
        self.save(update_fields=["step", "loss", "epoch", "eval_loss", "train_tokens"])

    def stop_to_resume(self, error: str) -> bool:
        """Its worker going away hands the run back: running → interrupted (resumes later).

        Only the worker that holds the run may (see :meth:`finish`).
        """
        return self._move(
            [self.Status.RUNNING],
            where={"worker": self.worker},
            status=self.Status.INTERRUPTED,
            error=error,
        )

    @property
    def worker_device(self) -> str:
        """What a student is told about the worker: its device, never its host or pid."""
        if not self.worker:
            return ""
        device = Worker.objects.filter(name=self.worker).values_list("device", flat=True).first()
        return device or "a worker"

    def public_text(self, text: str) -> str:
        """``text`` without server paths: the model, dataset and run folders by name.

        Operators see the full text in the server log; students see this.
        """
        named = [
            (str(self.output_dir), f"run {self.pk}"),
            (self.base_path, self.base_name),
            (self.dataset.file.path if self.dataset.file else "", self.dataset.name),
            (str(settings.MODEL_STORE_DIR), "the model store"),
            (str(settings.DATA_DIR), "the lab's data folder"),
        ]
        for path, name in named:
            if path:
                text = text.replace(path, name)
        return text

    def lose_worker(self) -> None:
        """Its worker died (silent, or its process gone): the run is interrupted and
        resumes from its newest checkpoint elsewhere, or fails past the crash limit."""
        saved = checkpoint.latest(self.output_dir)
        resume_at = f"checkpoint step {saved.step}" if saved else "the start (no checkpoint)"
        lost = f"its worker stopped responding at step {self.step}"
        if self.crash_resumes >= settings.MAX_CRASH_RESUMES:
            error = (
                f"{lost}; its workers died {self.crash_resumes + 1} times, more than the "
                f"{settings.MAX_CRASH_RESUMES} crash resumes allowed"
            )
            changes = {"status": self.Status.FAILED, "finished": timezone.now()}
        else:
            error = f"{lost}; resumes from {resume_at}"
            changes = {"status": self.Status.INTERRUPTED, "crash_resumes": self.crash_resumes + 1}
        logger.warning("run %s: worker %s is gone (%s)", self.pk, self.worker, error)
        if self._move([self.Status.RUNNING], where={"worker": self.worker}, error=error, **changes):
            RunLog.objects.create(run=self, line=f"interrupted: {error}")

    def retry(self) -> "Run":
        """A new queued run with this run's settings; a final run itself never changes."""
        return Run.objects.create(
            owner=self.owner,
            project=self.project,
            dataset=self.dataset,
            kind=self.kind,
            base_model=self.base_model,
            base_run=self.base_run,
            design=self.design,
            tokenizer=self.tokenizer,
            name=f"{self.name} (retry)",
            config=self.config,
            time_limit_s=self.time_limit_s,
        )

    def finish(self, status: str, error: str = "") -> bool:
        """running → a final state, for the worker that holds the run only.

        False (and no change) from any other state, or when the run was taken over
        after its worker was thought dead (that worker must not overwrite it).
        """
        return self._move(
            [self.Status.RUNNING],
            where={"worker": self.worker},
            status=status,
            error=error,
            finished=timezone.now(),
        )

    def end(self, outcome: Outcome, error: str = "") -> bool:
        """End a training attempt as the engine's ``outcome`` says (see :meth:`finish`)."""
        if outcome == Outcome.INTERRUPTED:
            return self.stop_to_resume(error)
        return self.finish(self.Status(outcome.value), error)


class RunMetric(models.Model):
    """One optimizer step of a run; (run, step) is unique, so a replayed step never doubles."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="metrics")
    step = models.PositiveIntegerField()
    epoch = models.FloatField()
    loss = models.FloatField()
    learning_rate = models.FloatField()
    grad_norm = models.FloatField(null=True)
    eval_loss = models.FloatField(null=True, help_text=_("Validation loss, on evaluation steps."))
    tokens = models.PositiveIntegerField()
    tokens_per_second = models.FloatField()
    elapsed_s = models.FloatField()
    cpu_rss_mb = models.FloatField(null=True)
    gpu_mem_mb = models.FloatField(null=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["step"]
        constraints = [models.UniqueConstraint("run", "step", name="metric_step_unique_per_run")]

    def __str__(self) -> str:
        return f"run {self.run_id} step {self.step}: {self.loss:.4f}"


class RunLog(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="logs")
    created = models.DateTimeField(default=timezone.now)
    line = models.TextField()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.line[:80]


class RunSample(models.Model):
    """Text a pretraining run sampled from its model at one step, so a student sees it learn."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="samples")
    step = models.PositiveIntegerField()
    prompt = models.TextField(blank=True)
    text = models.TextField()
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["step"]
        constraints = [models.UniqueConstraint("run", "step", name="sample_step_unique_per_run")]

    def __str__(self) -> str:
        return f"run {self.run_id} step {self.step}: {self.text[:60]}"


class Generation(Job):
    """Text generated on a worker from a pretraining run's model, for its owner."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="text_generations")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="text_generations"
    )
    prompt = models.TextField()
    max_new_tokens = models.PositiveIntegerField(default=60)
    temperature = models.FloatField(default=0.8)
    text = models.TextField(blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return self.prompt[:80]


class ChatExchange(Job):
    """One prompt answered by the base model and the tuned model, on a worker."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="chats")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chats"
    )
    system_prompt = models.TextField(blank=True)
    prompt = models.TextField()
    max_new_tokens = models.PositiveIntegerField(default=128)
    temperature = models.FloatField(default=0.0)
    top_p = models.FloatField(default=1.0)
    base_answer = models.TextField(blank=True)
    tuned_answer = models.TextField(blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return self.prompt[:80]

    def messages(self) -> list[dict[str, str]]:
        out = []
        if self.system_prompt:
            out.append({"role": "system", "content": self.system_prompt})
        out.append({"role": "user", "content": self.prompt})
        return out


class Worker(models.Model):
    """A Dramatiq worker process, as its last heartbeat described it."""

    name = models.CharField(max_length=200, unique=True, help_text=_("host:pid"))
    hostname = models.CharField(max_length=200)
    pid = models.PositiveIntegerField()
    device = models.CharField(max_length=200, help_text=_("GPU name, or CPU"))
    memory_total_mb = models.FloatField(null=True, blank=True)
    memory_used_mb = models.FloatField(null=True, blank=True)
    cpu_bf16 = models.BooleanField(
        default=False, help_text=_("A CPU with native bf16 matmuls (runs autocast to bf16)")
    )
    devices = models.JSONField(
        default=list,
        blank=True,
        help_text=_("Each CUDA GPU (name, memory, capability), Apple MPS and the CPU"),
    )
    started = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-last_seen"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_alive(self) -> bool:
        return (timezone.now() - self.last_seen).total_seconds() < settings.WORKER_STALE_AFTER_S
