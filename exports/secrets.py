"""Hub tokens encrypted at rest (Fernet: AES-128-CBC with an HMAC) with a key from the
environment, ``SLMLAB_SECRET_ENCRYPTION_KEY``; without it, one derived from SECRET_KEY."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


class SecretUnreadable(Exception):
    """The stored secret was encrypted with another key."""


def _fernet() -> Fernet:
    key = settings.SECRET_ENCRYPTION_KEY
    if not key:
        digest = hashlib.sha256(b"slmlab hub tokens\0" + settings.SECRET_KEY.encode()).digest()
        key = base64.urlsafe_b64encode(digest).decode()
    return Fernet(key.encode() if isinstance(key, str) else key)


def encrypt(text: str) -> bytes:
    return _fernet().encrypt(text.encode("utf-8"))


def decrypt(blob: bytes) -> str:
    try:
        return _fernet().decrypt(bytes(blob)).decode("utf-8")
    except InvalidToken as exc:
        raise SecretUnreadable(
            "the stored Hub token cannot be decrypted (the lab's encryption key changed); "
            "enter it again"
        ) from exc
