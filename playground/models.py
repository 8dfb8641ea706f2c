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
