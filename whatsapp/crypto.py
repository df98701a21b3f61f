"""Secrets at rest (access tokens, app secrets): Fernet, keys from FIELD_ENCRYPTION_KEY.

FIELD_ENCRYPTION_KEY may hold several comma-separated keys: the first encrypts, all decrypt, so a key
can be rotated without re-encrypting every row at once. With none set, a key is derived from SECRET_KEY
(development and tests only make sense this way; production sets its own).
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class DecryptionError(Exception):
    pass


@lru_cache(maxsize=4)
def _fernet(keys: str, secret_key: str) -> MultiFernet:
    parts = [k.strip() for k in keys.split(",") if k.strip()]
    if not parts:
        parts = [base64.urlsafe_b64encode(hashlib.sha256(f"fernet:{secret_key}".encode()).digest()).decode()]
    return MultiFernet([Fernet(k.encode()) for k in parts])


def fernet() -> MultiFernet:
    return _fernet(settings.FIELD_ENCRYPTION_KEY or "", settings.SECRET_KEY)


def encrypt(value: str) -> str:
    if not value:
        return ""
    return fernet().encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    if not token:
        return ""
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise DecryptionError("The stored secret cannot be decrypted with the configured keys.") from exc
