"""API keys: create (the raw key is returned once), revoke, and authenticate a request."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils import timezone

from playground.models import ApiKey, digest, new_raw_key


def create_key(user, name: str) -> tuple[ApiKey, str]:
    """A new key for ``user``; the raw key is returned here and never stored."""
    raw = new_raw_key()
    key = ApiKey.objects.create(owner=user, name=name.strip(), prefix=raw[:10], digest=digest(raw))
    return key, raw


def key_from_raw(raw: str) -> ApiKey | None:
    """The active key ``raw`` belongs to (its owner still active), else None."""
    if not raw:
        return None
    key = (
        ApiKey.objects.select_related("owner")
        .filter(digest=digest(raw), revoked__isnull=True, owner__is_active=True)
        .first()
    )
    if key is not None:
        ApiKey.objects.filter(pk=key.pk).update(last_used=timezone.now())
    return key


def bearer_key(request: HttpRequest) -> ApiKey | None:
    """The key in an ``Authorization: Bearer <key>`` header, if valid."""
    header = request.headers.get("Authorization", "")
    scheme, _, raw = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return key_from_raw(raw.strip())
