"""API keys for the OpenAI-compatible endpoint and scripts reading run results.

A key is shown to its owner once, when created; only its SHA-256 digest is stored (a
key is 256 random bits, so a fast hash is enough: there is nothing to brute-force).
"""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from slmlab.jobs import Job, JobStatus

KEY_PREFIX = "slm-"


def digest(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def new_raw_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


class ApiKey(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )
    name = models.CharField(_("name"), max_length=100)
    # The first characters, to tell keys apart in the list; never enough to use one.
    prefix = models.CharField(max_length=12)
    digest = models.CharField(max_length=64, unique=True)
    created = models.DateTimeField(auto_now_add=True)
    last_used = models.DateTimeField(null=True, blank=True)
    revoked = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked is None

    def revoke(self) -> bool:
        """Revoke once; False when it already was."""
        done = ApiKey.objects.filter(pk=self.pk, revoked__isnull=True).update(
            revoked=timezone.now()
        )
        return bool(done)


class Generation(Job):
    """One answer generated on a worker, for the Playground or the /v1 API.

    The web process creates the row (``services.start_generation``) and relays the
    worker's tokens (``relay``); the row keeps the request, the whole output, why it
    ended and its timings (``created`` is when it was queued).
    """

    class Kind(models.TextChoices):
        CHAT = "chat", _("chat")
        COMPLETION = "completion", _("completion")

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="generations"
    )
    # The id the caller asked for: a store model's name, or run-<id>.
    model_id = models.CharField(max_length=200)
    # The store model to load, and the run whose adapter goes on it (None: the base
    # alone). No store model: the run's base is a model pretrained in the lab, or the run
    # is a pretraining run whose own model answers.
    base_model = models.ForeignKey(
        "projects.BaseModel",
        on_delete=models.CASCADE,
        related_name="generations",
        null=True,
        blank=True,
    )
    run = models.ForeignKey(
        "training.Run", on_delete=models.CASCADE, null=True, blank=True, related_name="generations"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.CHAT)
    messages = models.JSONField(default=list, blank=True)
    prompt = models.TextField(blank=True)
    # training.engine.inference.sampling.Sampling's fields.
    sampling = models.JSONField(default=dict)
    output = models.TextField(blank=True)
    finish_reason = models.CharField(max_length=20, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    first_token = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.model_id} #{self.pk}"

    @property
    def model_dir(self) -> Path:
        """The folder the worker loads: the store model, the base a run's adapter goes
        on, or a pretraining run's own model."""
        run = self.run
        if run is None:
            return Path(self.base_model.path)
        return run.model_dir if run.is_pretraining else Path(run.base_path)

    @property
    def adapter_dir(self) -> Path | None:
        """The run's adapter (None: the model in :attr:`model_dir` alone)."""
        run = self.run
        return run.adapter_dir if run is not None and not run.is_pretraining else None

    def mark_first_token(self) -> bool:
        return self._move(
            [JobStatus.RUNNING], where={"first_token__isnull": True}, first_token=timezone.now()
        )

    def finish(  # type: ignore[override]
        self, *, output: str, finish_reason: str, prompt_tokens: int, completion_tokens: int
    ) -> bool:
        """running → done, or cancelled when the client went away mid-answer (the partial
        output and its token count are kept either way)."""
        status = JobStatus.CANCELLED if finish_reason == "cancelled" else JobStatus.DONE
        return self._move(
            [JobStatus.RUNNING],
            status=status,
            finished=timezone.now(),
            output=output,
            finish_reason=finish_reason,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
        )

    def withdraw(self) -> bool:
        """queued → cancelled, before a worker took it; a running generation stops
        through the relay's cancel flag instead, and its worker records the end."""
        return self._move(
            [JobStatus.QUEUED],
            status=JobStatus.CANCELLED,
            finish_reason="cancelled",
            finished=timezone.now(),
        )

    @property
    def usage(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


MAX_COLUMNS = 4


class Conversation(models.Model):
    """A playground chat with one to four models side by side, kept to continue later.

    ``model_ids`` are the stable ids the API uses (a store model's name, or ``run-<id>``
    for one of the owner's runs); column ``i`` of every turn answers with model ``i``.
    The models are fixed once the first message is sent (each column's history is its
    own model's answers); the system prompt and sampling settings apply to the next
    message.
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations"
    )
    title = models.CharField(_("title"), max_length=200, blank=True)
    model_ids = models.JSONField(default=list)
    system_prompt = models.TextField(_("system prompt"), blank=True)
    temperature = models.FloatField(_("temperature"), default=0.7)
    top_p = models.FloatField(_("top-p"), default=1.0)
    top_k = models.PositiveIntegerField(_("top-k"), default=0)
    repetition_penalty = models.FloatField(_("repetition penalty"), default=1.0)
    max_new_tokens = models.PositiveIntegerField(_("max new tokens"), default=256)
    stop = models.JSONField(_("stop strings"), default=list, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated", "-pk"]

    def __str__(self) -> str:
        return self.title or f"#{self.pk}"

    def get_absolute_url(self) -> str:
        from django.urls import reverse

        return reverse("playground:conversation", args=[self.pk])

    def sampling_settings(self) -> dict:
        """The settings the next message is answered with, by their API names."""
        return {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "repetition_penalty": self.repetition_penalty,
            "max_new_tokens": self.max_new_tokens,
            "stop": list(self.stop),
        }

    def history(self, column: int) -> list[dict[str, str]]:
        """The messages column ``column`` has seen: the system prompt, then every earlier
        turn's user message and that column's answer (an unanswered turn is skipped, so
        roles keep alternating)."""
        messages = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        for turn in self.turns.prefetch_related("answers__generation"):
            answer = next((a for a in turn.answers.all() if a.column == column), None)
            text = answer.text if answer else ""
            if text:
                messages += [
                    {"role": "user", "content": turn.content},
                    {"role": "assistant", "content": text},
                ]
        return messages


class Turn(models.Model):
    """One user message in a conversation, answered once per column."""

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="turns")
    content = models.TextField()
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return self.content[:80]


class Answer(models.Model):
    """One column's answer to a turn: the generation job that streams it."""

    turn = models.ForeignKey(Turn, on_delete=models.CASCADE, related_name="answers")
    column = models.PositiveSmallIntegerField()
    model_id = models.CharField(max_length=200)
    # What the column header says (a run's name, a store model's name), as it was then.
    label = models.CharField(max_length=300)
    generation = models.OneToOneField(Generation, on_delete=models.CASCADE, related_name="answer")

    class Meta:
        ordering = ["turn", "column"]
        constraints = [
            models.UniqueConstraint(fields=["turn", "column"], name="one_answer_per_column")
        ]

    def __str__(self) -> str:
        return f"{self.turn_id}:{self.column} {self.model_id}"

    # What the page shows comes from the generation: the row its worker writes.
    @property
    def text(self) -> str:
        return self.generation.output

    @property
    def status(self) -> str:
        return self.generation.status

    @property
    def error(self) -> str:
        return self.generation.error

    @property
    def finish_reason(self) -> str:
        return self.generation.finish_reason
