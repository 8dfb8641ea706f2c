"""Evaluations: a run's tuned model against its base on held-out examples, per example."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from projects.models import BaseModel, Dataset, Project
from slmlab.jobs import Job
from training.models import Run


def eval_file_path(instance: Evaluation, filename: str) -> str:
    suffix = filename.rsplit(".", 1)[-1].lower()
    return f"evaluations/u{instance.owner_id}/{uuid.uuid4().hex}.{suffix}"


class Evaluation(Job):
    """Base and tuned replies to a run's validation rows, scored, on a GPU worker; or, with
    no run, one store model alone on an eval set of a project (its replies are ``base``)."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="evaluations"
    )
    run = models.ForeignKey(
        Run, on_delete=models.CASCADE, related_name="evaluations", null=True, blank=True
    )
    # A store model evaluated alone (no run): the project it belongs to, the model, and the
    # dataset whose validation rows (or template, with an uploaded file) make the eval set.
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="evaluations", null=True, blank=True
    )
    base_model = models.ForeignKey(
        BaseModel, on_delete=models.CASCADE, related_name="evaluations", null=True, blank=True
    )
    dataset = models.ForeignKey(
        Dataset, on_delete=models.CASCADE, related_name="evaluations", null=True, blank=True
    )
    automatic = models.BooleanField(default=False, help_text=_("Started by the run's end"))
    limit = models.PositiveIntegerField(default=100, help_text=_("Validation examples, at most"))
    # An uploaded eval set instead of the dataset's validation rows, read with this DataSpec
    # (its format and shape; the run's prompt template).
    eval_file = models.FileField(upload_to=eval_file_path, max_length=300, blank=True)
    eval_spec = models.JSONField(null=True, blank=True)
    metrics = models.JSONField(default=list)
    ignore_case = models.BooleanField(default=False)
    regex = models.CharField(max_length=500, blank=True)
    max_new_tokens = models.PositiveIntegerField(default=64)
    temperature = models.FloatField(default=0.0)
    top_p = models.FloatField(default=1.0)
    seed = models.PositiveIntegerField(default=0)
    phase = models.CharField(max_length=20, blank=True)
    examples_done = models.PositiveIntegerField(default=0)
    examples_total = models.PositiveIntegerField(default=0)
    base_cached = models.BooleanField(default=False)
    summary = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(run__isnull=False)
                | models.Q(project__isnull=False, base_model__isnull=False),
                name="evaluation_of_a_run_or_a_store_model",
            )
        ]

    def __str__(self) -> str:
        return f"evaluation {self.pk} of {self.run or self.base_model} ({self.status})"

    @property
    def of_run(self) -> bool:
        """A run's tuned model against its base; otherwise one model alone (a store model,
        or the model a pretraining run saved: there is no base to compare it with)."""
        return self.run_id is not None and not self.run.is_pretraining

    @property
    def of_pretrained(self) -> bool:
        """The model a pretraining run saved, alone, on an eval set of its project."""
        return self.run_id is not None and self.run.is_pretraining

    @property
    def model_name(self) -> str:
        if self.of_pretrained:
            return _("%(run)s (pretrained in the lab)") % {"run": self.run.name}
        return self.run.base_name if self.run_id else self.base_model.name

    @property
    def back(self) -> Run | Project:
        """The page this evaluation was started from."""
        return self.run if self.run_id else self.project

    def get_absolute_url(self) -> str:
        return reverse("evaluations:detail", args=[self.pk])

    @property
    def percent(self) -> int:
        if self.status == self.Status.DONE:
            return 100
        steps = (2 if self.of_run else 1) * self.examples_total  # base, then tuned
        done = self.examples_done + (self.examples_total if self.phase != "base" else 0)
        return min(100, round(100 * done / steps)) if steps else 0


class EvalRow(models.Model):
    """One example of an evaluation: its input, the expected output and both replies."""

    evaluation = models.ForeignKey(Evaluation, on_delete=models.CASCADE, related_name="rows")
    index = models.PositiveIntegerField()
    prompt = models.TextField()
    expected = models.TextField()
    base_output = models.TextField()
    tuned_output = models.TextField(blank=True)
    base_scores = models.JSONField(default=dict)
    tuned_scores = models.JSONField(null=True, blank=True)
    changed = models.BooleanField(default=False)
    worse = models.BooleanField(default=False)

    class Meta:
        ordering = ["index"]
        constraints = [models.UniqueConstraint("evaluation", "index", name="eval_row_unique_index")]

    def __str__(self) -> str:
        return f"example {self.index} of evaluation {self.evaluation_id}"


class BaseOutputs(models.Model):
    """The base model's replies for one eval set and generation settings, reused by the
    owner's later runs and evaluations; ``key`` hashes every input that decides them.

    Kept per owner: the replies echo the owner's prompts, so they go with the account,
    and another user never learns (from a cache hit) what someone else evaluated."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="base_outputs"
    )
    key = models.CharField(max_length=64)
    outputs = models.JSONField()
    losses = models.JSONField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    hits = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint("owner", "key", name="base_outputs_unique_owner_key")
        ]

    def __str__(self) -> str:
        return self.key[:12]
