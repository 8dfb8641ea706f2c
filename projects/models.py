from __future__ import annotations

import copy
import uuid
from pathlib import Path

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from slmlab.jobs import Job, JobStatus
from training.engine.data.records import DataSpec
from training.engine.data.split import validation_count
from training.engine.models.arch import read_model_facts
from training.engine.models.folders import folder_bytes


class Project(models.Model):
    """A user's workspace: holds datasets and runs."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="projects"
    )
    name = models.CharField(_("name"), max_length=100)
    description = models.TextField(_("description"), blank=True, max_length=2000)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated"]
        constraints = [
            models.UniqueConstraint("owner", Lower("name"), name="project_name_unique_per_owner")
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("projects:detail", args=[self.pk])


class BaseModel(models.Model):
    """A model in the lab's store that runs start from. Shared by all users; operators add them."""

    class Source(models.TextChoices):
        BUNDLED = "bundled", _("bundled with SLM Lab")
        HUB = "hub", _("Hugging Face Hub")
        LOCAL = "local", _("local folder")

    name = models.CharField(max_length=200, unique=True)
    path = models.CharField(max_length=500, help_text=_("Folder in the model store"))
    source = models.CharField(max_length=20, choices=Source.choices)
    parameters = models.BigIntegerField(default=0)
    context_length = models.PositiveIntegerField(default=0)
    disk_bytes = models.BigIntegerField(default=0)
    licence = models.CharField(max_length=100, blank=True)
    is_default = models.BooleanField(default=False)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-is_default", "name"]

    def __str__(self) -> str:
        return self.name

    @staticmethod
    def facts_of(folder: Path | str) -> dict:
        """Parameter count, context length and size on disk of a model folder, as fields."""
        facts = read_model_facts(folder)
        return {
            "parameters": facts.parameters,
            "context_length": facts.context_length,
            "disk_bytes": folder_bytes(Path(folder)),
        }


def dataset_upload_path(instance: Dataset, filename: str) -> str:
    return f"datasets/u{instance.owner_id}/{instance.uid}.{instance.file_format}"


def validation_upload_path(instance: Dataset, filename: str) -> str:
    return f"datasets/u{instance.owner_id}/{instance.uid}-validation.{instance.file_format}"


class ImmutableDatasetError(Exception):
    """Content of a dataset that a run used was about to change (make a new version instead)."""


class Dataset(models.Model):
    """An uploaded, validated training file. Immutable once a run uses it."""

    class FileFormat(models.TextChoices):
        JSONL = "jsonl", _("JSON Lines")
        JSON = "json", _("JSON array")
        CSV = "csv", _("CSV")
        TXT = "txt", _("plain text")

    class Shape(models.TextChoices):
        ALPACA = "alpaca", _("instruction / input / output")
        PROMPT_COMPLETION = "prompt_completion", _("prompt / completion")
        MESSAGES = "messages", _("chat messages (role / content)")
        SHAREGPT = "sharegpt", _("ShareGPT conversations (from / value)")
        TEXT = "text", _("plain text")

    class TextSplit(models.TextChoices):
        LINE = "line", _("one sample per line")
        BLANK_LINE = "blank_line", _("samples separated by a blank line")

    class Template(models.TextChoices):
        MODEL = "model", _("the model's chat template")
        ALPACA = "alpaca", _("Alpaca (### Instruction / ### Response)")
        CUSTOM = "custom", _("custom template")

    uid = models.UUIDField(unique=True, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="datasets"
    )
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="datasets")
    name = models.CharField(_("name"), max_length=200)
    file = models.FileField(upload_to=dataset_upload_path, max_length=300)
    file_format = models.CharField(
        _("file format"), max_length=10, choices=FileFormat.choices, default=FileFormat.JSONL
    )
    shape = models.CharField(_("shape"), max_length=20, choices=Shape.choices, default=Shape.ALPACA)
    mapping = models.JSONField(
        default=dict,
        blank=True,
        help_text=_("Shape field -> column of the file, where they differ"),
    )
    columns = models.JSONField(default=list, blank=True, help_text=_("Columns of the first rows"))
    text_split = models.CharField(max_length=20, choices=TextSplit.choices, default=TextSplit.LINE)
    template = models.CharField(
        _("prompt template"), max_length=20, choices=Template.choices, default=Template.MODEL
    )
    custom_template = models.TextField(_("custom template"), blank=True, max_length=4000)
    row_count = models.PositiveIntegerField(default=0)
    size_bytes = models.BigIntegerField(default=0)
    preview = models.JSONField(default=list, help_text=_("The first rows, for display"))
    description = models.TextField(_("description"), blank=True, max_length=2000)
    # Versions: content changes to a dataset a run used make a new row in the same lineage.
    lineage = models.UUIDField(db_index=True, editable=False, null=True)
    version = models.PositiveIntegerField(default=1)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    # Validation split: a seeded share of the rows, or a separate validation file.
    val_percent = models.PositiveSmallIntegerField(_("validation share (%)"), default=0)
    split_seed = models.PositiveIntegerField(_("split seed"), default=0)
    validation_file = models.FileField(upload_to=validation_upload_path, max_length=300, blank=True)
    validation_row_count = models.PositiveIntegerField(default=0)
    created = models.DateTimeField(auto_now_add=True)
    # Privacy: the uploaded file (and validation file) go once the last run using this
    # version ends; its metadata, preview and statistics stay.
    delete_after_training = models.BooleanField(
        _("delete the file after training"),
        default=False,
        help_text=_(
            "Remove the uploaded file once the last run that uses it ends; its name, "
            "statistics and the runs' results stay."
        ),
    )
    file_deleted_at = models.DateTimeField(null=True, blank=True, editable=False)

    # What a run trained on: frozen once any run uses the dataset.
    CONTENT_FIELDS = (
        "file",
        "file_format",
        "shape",
        "mapping",
        "columns",
        "text_split",
        "template",
        "custom_template",
        "row_count",
        "size_bytes",
        "preview",
        "val_percent",
        "split_seed",
        "validation_file",
        "validation_row_count",
    )

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return self.name if self.version == 1 else f"{self.name} (v{self.version})"

    def save(self, *args, **kwargs) -> None:
        if self.lineage is None:
            self.lineage = self.uid
        loaded = getattr(self, "_loaded_content", None)
        if loaded is not None and loaded != self._content() and self.in_use:
            raise ImmutableDatasetError(f"dataset {self.pk} is used by a run: make a new version")
        super().save(*args, **kwargs)
        self._loaded_content = self._content()

    def get_absolute_url(self) -> str:
        return reverse("projects:dataset", args=[self.project_id, self.pk])

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        instance._loaded_content = instance._content()
        return instance

    def _content(self) -> dict:
        content = {}
        for name in self.CONTENT_FIELDS:
            if name not in self.__dict__:  # deferred
                continue
            value = getattr(self, name)
            content[name] = value.name if hasattr(value, "storage") else copy.deepcopy(value)
        return content

    @property
    def in_use(self) -> bool:
        return self.runs.exists()

    @property
    def has_validation_file(self) -> bool:
        return bool(self.validation_file)

    def split_sizes(self) -> tuple[int, int]:
        """(training rows, validation rows) as a run will split them."""
        if self.validation_file:
            return self.row_count, self.validation_row_count
        held_out = validation_count(self.row_count, self.val_percent / 100)
        return self.row_count - held_out, held_out

    def versions(self) -> models.QuerySet[Dataset]:
        return Dataset.objects.filter(lineage=self.lineage, owner_id=self.owner_id).order_by(
            "-version"
        )

    def spec(self) -> DataSpec:
        return DataSpec(
            format=self.file_format,
            shape=self.shape,
            mapping=dict(self.mapping),
            text_split=self.text_split,
            template=self.template,
            custom_template=self.custom_template,
        )

    def engine_options(self) -> dict:
        """The RunConfig fields that tell the engine how to read, render and split this file."""
        return {
            **self.spec().config_fields(),
            "validation_path": self.validation_file.path if self.validation_file else "",
            "validation_ratio": 0.0 if self.validation_file else self.val_percent / 100,
            "split_seed": self.split_seed,
        }


class DatasetStats(Job):
    """Statistics of a dataset's rows, tokenized by one base model at one max length."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="stats")
    base_model = models.ForeignKey(BaseModel, on_delete=models.CASCADE, related_name="+")
    max_len = models.PositiveIntegerField(_("max length"))
    rows_done = models.PositiveIntegerField(default=0)
    result = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created", "-pk"]
        constraints = [
            models.UniqueConstraint("dataset", "base_model", "max_len", name="dataset_stats_unique")
        ]

    def __str__(self) -> str:
        return f"{self.dataset} @ {self.max_len} ({self.status})"

    @classmethod
    def wanted(
        cls, dataset: Dataset, base_model: BaseModel, max_len: int
    ) -> tuple[DatasetStats, bool]:
        """The statistics row for these settings, and whether it needs computing (new, or
        failed before and queued again)."""
        stats, created = cls.objects.get_or_create(
            dataset=dataset, base_model=base_model, max_len=max_len
        )
        return stats, created or stats.requeue()


class DatasetCheck(Job):
    """New settings (shape, mapping, template) checked against every row on a worker, then
    saved: in place while no run used the dataset, else as a new version (``result``)."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="checks")
    spec = models.JSONField(help_text=_("The DataSpec fields to check and save"))
    rows_done = models.PositiveIntegerField(default=0)
    problems = models.JSONField(default=list, blank=True, help_text=_("The first problems"))
    result = models.ForeignKey(
        Dataset, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created", "-pk"]

    def __str__(self) -> str:
        return f"check of {self.dataset} ({self.status})"

    def data_spec(self) -> DataSpec:
        return DataSpec(**self.spec)


class ModelDownload(Job):
    """An operator's download of a catalog model from the Hugging Face Hub, on a worker."""

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="model_downloads"
    )
    repo_id = models.CharField(max_length=200)
    name = models.CharField(max_length=200, help_text=_("Name in the store"))
    licence = models.CharField(max_length=100, blank=True)
    bytes_done = models.BigIntegerField(default=0)
    bytes_total = models.BigIntegerField(default=0)
    base_model = models.ForeignKey(
        BaseModel, null=True, blank=True, on_delete=models.SET_NULL, related_name="downloads"
    )

    class Meta:
        ordering = ["-created"]
        constraints = [
            # One download of a repository at a time.
            models.UniqueConstraint(
                "repo_id",
                condition=models.Q(status__in=[JobStatus.QUEUED, JobStatus.RUNNING]),
                name="one_active_download_per_repo",
            )
        ]

    def __str__(self) -> str:
        return f"{self.repo_id} ({self.get_status_display()})"

    @property
    def percent(self) -> int:
        if self.status == self.Status.DONE:
            return 100
        return min(100, round(100 * self.bytes_done / self.bytes_total)) if self.bytes_total else 0


class DatasetImport(Job):
    """A dataset of the Hugging Face Hub imported into a project, on the CPU worker: its
    data files fetched at one commit, combined into one file, checked row by row and
    stored as a new dataset (``result``); a problem fails it and nothing is stored."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="dataset_imports"
    )
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="imports")
    repo_id = models.CharField(_("repository"), max_length=200)
    config = models.CharField(_("config"), max_length=100, blank=True)
    split = models.CharField(_("split"), max_length=100, default="train")
    revision = models.CharField(_("revision"), max_length=100, blank=True)
    name = models.CharField(_("dataset name"), max_length=200)
    commit = models.CharField(max_length=64, blank=True, help_text=_("The commit fetched"))
    files = models.JSONField(default=list, blank=True, help_text=_("The data files fetched"))
    bytes_done = models.BigIntegerField(default=0)
    bytes_total = models.BigIntegerField(default=0)
    rows_checked = models.PositiveIntegerField(default=0)
    result = models.ForeignKey(
        Dataset, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created", "-pk"]

    def __str__(self) -> str:
        return f"{self.repo_id} → {self.project} ({self.get_status_display()})"

    @property
    def percent(self) -> int:
        if self.status == self.Status.DONE:
            return 100
        return min(100, round(100 * self.bytes_done / self.bytes_total)) if self.bytes_total else 0


class SyntheticGeneration(Job):
    """A dataset written by a model on the GPU worker: a model recipe's prompts (see
    training/engine/data/model_recipe.py) answered in batches, replies that fail the
    recipe's check or repeat a row dropped, the rest stored as a new dataset
    (``result``). Nothing is stored when it fails, is cancelled or keeps no row."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="synthetic_generations"
    )
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="generations")
    name = models.CharField(_("dataset name"), max_length=200)
    model_ref = models.CharField(
        max_length=210, help_text=_("A store model's name, or run-<id> for a fine-tune")
    )
    model_label = models.CharField(max_length=300, help_text=_("The model, as the page shows it"))
    base_model = models.ForeignKey(
        BaseModel, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    run = models.ForeignKey(
        "training.Run",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text=_("The fine-tune whose adapter writes the rows, on its base model"),
    )
    recipe = models.JSONField(help_text=_("The model recipe as the form checked it"))
    rows_total = models.PositiveIntegerField(default=0)
    generated = models.PositiveIntegerField(default=0)
    kept = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    failed_check = models.PositiveIntegerField(default=0)
    result = models.ForeignKey(
        Dataset, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created", "-pk"]

    def __str__(self) -> str:
        return f"{self.name} by {self.model_label} ({self.get_status_display()})"

    @property
    def percent(self) -> int:
        if self.status == self.Status.DONE:
            return 100
        return min(100, round(100 * self.generated / self.rows_total)) if self.rows_total else 0


class UploadStatus(models.TextChoices):
    """A job's statuses, with the time before it: while the browser sends the file."""

    RECEIVING = "receiving", _("receiving the file")
    QUEUED = JobStatus.QUEUED.value, JobStatus.QUEUED.label
    RUNNING = JobStatus.RUNNING.value, JobStatus.RUNNING.label
    DONE = JobStatus.DONE.value, JobStatus.DONE.label
    FAILED = JobStatus.FAILED.value, JobStatus.FAILED.label
    CANCELLED = JobStatus.CANCELLED.value, JobStatus.CANCELLED.label


class Upload(Job):
    """A dataset file the page sends in pieces (see projects/uploads.py).

    While ``receiving``, each piece is appended to a temporary file at the offset the
    server holds, so a piece sent twice is stored once and a dropped connection resumes
    where the server stopped; files whose rows are lines are checked as they arrive.
    Complete, it is checked whole where it could not be (in the request, or on a worker:
    ``queued`` → ``running``) and stored as a dataset, a validation file or a
    replacement (``result``); a problem fails it and nothing is stored.
    """

    class Purpose(models.TextChoices):
        DATASET = "dataset", _("new dataset")
        VALIDATION = "validation", _("validation file")
        REPLACEMENT = "replacement", _("replacement file")

    Status = UploadStatus  # type: ignore[assignment]
    status = models.CharField(
        max_length=20, choices=UploadStatus.choices, default=UploadStatus.RECEIVING, db_index=True
    )
    uid = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="uploads"
    )
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="uploads")
    dataset = models.ForeignKey(
        Dataset,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="uploads",
        help_text=_("The dataset a validation or replacement file is for"),
    )
    purpose = models.CharField(max_length=20, choices=Purpose.choices, default=Purpose.DATASET)
    filename = models.CharField(max_length=255)
    file_format = models.CharField(max_length=10, choices=Dataset.FileFormat.choices)
    size = models.BigIntegerField(help_text=_("Bytes the browser announced"))
    received = models.BigIntegerField(default=0, help_text=_("Bytes stored, in order"))
    form = models.JSONField(default=dict, blank=True, help_text=_("The upload form as posted"))
    streamed = models.BooleanField(default=False, help_text=_("Rows checked as they arrive"))
    spec = models.JSONField(null=True, blank=True, help_text=_("DataSpec, once recognised"))
    columns = models.JSONField(default=list, blank=True)
    checked_bytes = models.BigIntegerField(default=0)
    checked_lines = models.BigIntegerField(default=0)
    row_count = models.PositiveIntegerField(default=0)
    preview = models.JSONField(default=list, blank=True)
    problems = models.JSONField(default=list, blank=True, help_text=_("The first problems"))
    result = models.ForeignKey(
        Dataset, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        ordering = ["-created", "-pk"]

    def __str__(self) -> str:
        return f"{self.filename} ({self.get_status_display()})"

    @property
    def path(self) -> Path:
        """Where the pieces go: the user's own file under MEDIA_ROOT/tmp."""
        return Path(settings.MEDIA_ROOT) / "tmp" / f"upload-{self.uid}.{self.file_format}"

    @property
    def is_active(self) -> bool:
        return self.status not in self.FINAL

    def data_spec(self) -> DataSpec | None:
        return DataSpec(**self.spec) if self.spec else None

    def _move(self, from_statuses, *, where=None, **changes) -> bool:
        # Every change counts as activity: what is untouched for long is abandoned.
        return super()._move(from_statuses, where=where, updated=timezone.now(), **changes)

    def take(self) -> bool:
        """receiving → running, for the one request that stores the complete file."""
        return self._move(
            [UploadStatus.RECEIVING], status=UploadStatus.RUNNING, started=timezone.now()
        )

    def queue(self) -> bool:
        """receiving → queued: complete, for a worker to check and store."""
        return self._move([UploadStatus.RECEIVING], status=UploadStatus.QUEUED)

    def fail(self, error: str, **details) -> bool:
        """Any unfinished state → failed (a receiving upload fails on a bad piece)."""
        return self._move(
            [UploadStatus.RECEIVING, UploadStatus.QUEUED, UploadStatus.RUNNING],
            status=UploadStatus.FAILED,
            error=error[:4000],
            finished=timezone.now(),
            **details,
        )
