from django.conf import settings
from django.db import models
from django.db.models.functions import Lower
from django.urls import reverse
from django.utils.translation import gettext_lazy as _


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
    return f"datasets/u{instance.owner_id}/{instance.uid}.jsonl"


class Dataset(models.Model):
    """An uploaded, validated training file. Immutable once a run uses it."""

    class Format(models.TextChoices):
        ALPACA = "alpaca", _("instruction / input / output")

    uid = models.UUIDField(unique=True, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="datasets"
    )
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="datasets")
    name = models.CharField(_("name"), max_length=200)
    file = models.FileField(upload_to=dataset_upload_path, max_length=300)
    format = models.CharField(max_length=20, choices=Format.choices, default=Format.ALPACA)
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
