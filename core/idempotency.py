"""Idempotency-Key for POST endpoints: the same key and body within 24 hours returns the first response
and creates nothing; the same key with another body is a 422.

    class SendMessageView(GenericAPIView):
        @idempotent
        def post(self, request, ...): ...

Records live in the cache (Redis), whose keys carry the tenant schema (django_tenants.cache.make_key);
the key is also scoped to the caller (user or API key), so two clients can never collide. A request
still running under the same key gets a 409 rather than a second execution.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.core.cache import cache
from rest_framework.request import Request
from rest_framework.response import Response

from core.errors import ServiceError

HEADER = "Idempotency-Key"
TTL_SECONDS = 24 * 3600
PENDING_SECONDS = 60
MAX_KEY_LENGTH = 255


def _fingerprint(request: Request) -> str:
    """The method, path and parsed body (files by content digest, so multipart boundaries don't count)."""
    digest = hashlib.sha256(f"{request.method} {request.path}\n".encode())
    data: Any = request.data
    if hasattr(data, "lists"):
        items = []
        for key, values in sorted(data.lists()):
            for value in values:
                if hasattr(value, "chunks"):
                    file_hash = hashlib.sha256()
                    for chunk in value.chunks():
                        file_hash.update(chunk)
                    value.seek(0)
                    items.append([key, f"file:{value.name}:{file_hash.hexdigest()}"])
                else:
                    items.append([key, str(value)])
        canonical = json.dumps(items)
    else:
        canonical = json.dumps(data, sort_keys=True, default=str)
    digest.update(canonical.encode())
    return digest.hexdigest()


def scope_of(request: Request, key: str) -> str:
    auth = getattr(request, "auth", None)
    principal = getattr(auth, "prefix", None) or f"user:{getattr(request.user, 'pk', 'anon')}"
    return "idem:" + hashlib.sha256(f"{principal}\n{key}".encode()).hexdigest()


def idempotent(view_method: Callable[..., Response]) -> Callable[..., Response]:
    @wraps(view_method)
    def wrapper(self: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
        key = request.headers.get(HEADER)
        if key is None:
            return view_method(self, request, *args, **kwargs)
        if not key.strip() or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            raise ServiceError(
                "invalid_idempotency_key", f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable characters."
            )
        scope = scope_of(request, key)
        fingerprint = _fingerprint(request)
        record = cache.get(scope)
        if record is None and cache.add(
            scope, {"pending": True, "fingerprint": fingerprint}, PENDING_SECONDS
        ):
            try:
                response = view_method(self, request, *args, **kwargs)
            except BaseException:
                cache.delete(scope)  # an error creates nothing: the client may try the key again
                raise
            if response.status_code < 400:
                cache.set(
                    scope,
                    {"fingerprint": fingerprint, "status": response.status_code, "data": response.data},
                    TTL_SECONDS,
                )
            else:
                cache.delete(scope)
            return response
        record = record or cache.get(scope) or {}
        if record.get("fingerprint") != fingerprint:
            raise ServiceError(
                "idempotency_key_reused",
                f"This {HEADER} was already used with a different request.",
                status=422,
            )
        if record.get("pending"):
            raise ServiceError(
                "idempotency_in_progress",
                f"A request with this {HEADER} is still being processed; retry shortly.",
                status=409,
            )
        return Response(record["data"], status=record["status"], headers={"Idempotent-Replayed": "true"})

    return wrapper
