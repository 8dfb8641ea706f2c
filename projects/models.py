from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

if TYPE_CHECKING:
    from training.engine.data import DataSpec


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


def dataset_upload_path(instance: "Dataset", filename: str) -> str:
    return f"datasets/u{instance.owner_id}/{instance.uid}.{instance.file_format}"


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
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("projects:dataset", args=[self.project_id, self.pk])

    @property
    def in_use(self) -> bool:
        return self.runs.exists()

    def spec(self) -> "DataSpec":
        from training.engine.data import DataSpec

        return DataSpec(
            format=self.file_format,
            shape=self.shape,
            mapping=dict(self.mapping),
            text_split=self.text_split,
            template=self.template,
            custom_template=self.custom_template,
        )

    def engine_options(self) -> dict:
        """The RunConfig fields that tell the engine how to read and render this file."""
        return {
            "dataset_format": self.file_format,
            "dataset_shape": self.shape,
            "dataset_mapping": dict(self.mapping),
            "dataset_text_split": self.text_split,
            "prompt_template": self.template,
            "custom_template": self.custom_template,
        }
