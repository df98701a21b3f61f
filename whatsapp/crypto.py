"""Secrets at rest: moved to core.crypto (the AI agent's LLM keys use it too, and knowledge may not import
whatsapp); the names stay importable from here."""

from __future__ import annotations

from core.crypto import (  # noqa: F401 - re-exported
    ENCRYPTED_SUFFIX,
    DecryptionError,
    decrypt,
    encrypt,
    encrypted_fields,
    fernet,
    is_current,
    rotate,
)
