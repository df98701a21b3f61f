"""Secrets at rest (access tokens, app secrets, LLM API keys): Fernet, with the keys in
settings.FIELD_ENCRYPTION_KEYS. In core so that every app may use it (whatsapp.crypto re-exports it).

FIELD_ENCRYPTION_KEY holds one or more comma-separated keys: the first encrypts, all decrypt. To rotate,
put a new key first, run `manage.py rotate_encryption_key` (every stored value re-encrypted with the
first key), then drop the old ones. A model column holding a value of encrypt() is named `*_encrypted`:
that is how the rotation finds every one of them (`encrypted_fields`), in any app.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.apps import apps
from django.conf import settings
from django.db import models

ENCRYPTED_SUFFIX = "_encrypted"


class DecryptionError(Exception):
    pass


@lru_cache(maxsize=4)
def _fernets(keys: tuple[str, ...]) -> tuple[MultiFernet, Fernet]:
    if not keys:
        raise DecryptionError("No FIELD_ENCRYPTION_KEY is configured.")
    fernets = [Fernet(key.encode()) for key in keys]
    return MultiFernet(fernets), fernets[0]


def fernet() -> MultiFernet:
    return _fernets(tuple(settings.FIELD_ENCRYPTION_KEYS))[0]


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


def is_current(token: str) -> bool:
    """Whether the token is encrypted with the first (current) key; an empty value needs no key."""
    if not token:
        return True
    try:
        _fernets(tuple(settings.FIELD_ENCRYPTION_KEYS))[1].decrypt(token.encode())
    except InvalidToken:
        return False
    return True


def rotate(token: str) -> str:
    """The same secret encrypted with the first key; DecryptionError when no configured key opens it."""
    try:
        return fernet().rotate(token.encode()).decode()
    except InvalidToken as exc:
        raise DecryptionError("The stored secret cannot be decrypted with the configured keys.") from exc


def encrypted_fields() -> Iterator[tuple[type[models.Model], list[str]]]:
    """Every installed model with encrypted columns, and the names of those columns."""
    for model in apps.get_models():
        if model._meta.proxy or not model._meta.managed:
            continue
        names = [
            field.name
            for field in model._meta.concrete_fields
            if field.name.endswith(ENCRYPTED_SUFFIX)
            and isinstance(field, models.TextField | models.CharField)
        ]
        if names:
            yield model, names
