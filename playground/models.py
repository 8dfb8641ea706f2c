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
    # The base to load, and the run whose adapter goes on it (None: the base alone).
    base_model = models.ForeignKey(
        "projects.BaseModel", on_delete=models.CASCADE, related_name="generations"
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
