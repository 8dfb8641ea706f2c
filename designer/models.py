"""A project's model designs: a decoder-only transformer kept as its spec's dict."""

from pathlib import Path

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from slmlab.jobs import Job
from training.engine.design.spec import Design as DesignSpec


class Design(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    project = models.ForeignKey(
        "projects.Project", on_delete=models.CASCADE, related_name="designs"
    )
    name = models.CharField(_("name"), max_length=100)
    spec = models.JSONField(default=dict)
    # The tokenizer the design is built for: its vocabulary is checked against the
    # design's, and pretraining uses it.
    tokenizer = models.ForeignKey(
        "TrainedTokenizer",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="designs",
        verbose_name=_("tokenizer"),
    )
    batch_size = models.PositiveIntegerField(default=8)
    sequence_length = models.PositiveIntegerField(default=128)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def design(self) -> DesignSpec:
        return DesignSpec.from_dict(self.spec)


class TrainedTokenizer(Job):
    """A byte-level BPE tokenizer trained on a project's dataset on the CPU worker."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    project = models.ForeignKey(
        "projects.Project", on_delete=models.CASCADE, related_name="tokenizers"
    )
    dataset = models.ForeignKey("projects.Dataset", on_delete=models.CASCADE)
    vocab_size = models.PositiveIntegerField(_("vocabulary size"), default=4096)
    progress = models.FloatField(default=0.0)
    trained_vocab_size = models.PositiveIntegerField(null=True, blank=True)
    tokens_per_word = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"tokenizer {self.pk} ({self.vocab_size})"

    @property
    def folder(self) -> Path:
        return Path(settings.DATA_DIR) / "tokenizers" / f"u{self.owner_id}" / str(self.pk)
