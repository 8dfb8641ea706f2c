"""API keys for the OpenAI-compatible endpoint and scripts reading run results.

A key is shown to its owner once, when created; only its SHA-256 digest is stored (a
key is 256 random bits, so a fast hash is enough: there is nothing to brute-force).
"""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

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
