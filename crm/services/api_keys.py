"""API keys: personal or integration, issued, rotated, revoked."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from core import audit
from core.errors import ServiceError
from crm.models import Agent, ApiKey
from crm.services.agents import ROLE_RANK, check_can_grant

User = Any  # the tenant's auth user (django.contrib.auth.User)


API_KEY_PREFIX = "wacrm_"


def hash_api_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedApiKey:
    api_key: ApiKey
    raw: str  # shown once; only its hash is stored


def _key_kind(kind: str | None, user: User | None) -> str:
    if kind is None:
        return ApiKey.Kind.PERSONAL if user is not None else ApiKey.Kind.INTEGRATION
    if kind not in ApiKey.Kind.values:
        raise ServiceError("invalid_kind", f"'{kind}' is not a kind of API key.", field="kind")
    return kind


def _check_personal_key_owner(*, user: User | None, created_by: User | None, by_role: str | None) -> None:
    if user is None:
        raise ServiceError("invalid_user", "A personal key belongs to a user.", field="user")
    if not user.is_active or not Agent.objects.filter(user_id=user.pk).exists():
        raise ServiceError(
            "invalid_user",
            "A personal key belongs to an active member of this workspace.",
            field="user",
        )
    # A personal key acts as its user: only they make one (the operator's command, with no by_role, too).
    if by_role is not None and getattr(created_by, "pk", None) != user.pk:
        raise ServiceError(
            "forbidden_kind",
            "Only its user can make a personal key.",
            field="kind",
            status=403,
        )


def _check_can_make_integration_key(*, role: str, by_role: str | None) -> None:
    if role not in ApiKey.INTEGRATION_ROLES:
        raise ServiceError(
            "invalid_role",
            "An integration key needs the role supervisor or above; for an agent's access, the agent "
            "makes a personal key.",
            field="role",
        )
    if by_role is not None and ROLE_RANK[Agent.Role(by_role)] < ROLE_RANK[Agent.Role.ADMIN]:
        raise ServiceError(
            "forbidden_kind",
            "Only admins and owners make integration keys; make a personal key instead.",
            field="kind",
            status=403,
        )
    check_can_grant(by_role=by_role, current=None, new=role)


def check_api_key_identity(
    *,
    kind: str | None,
    role: str | None,
    user: User | None,
    created_by: User | None = None,
    by_role: str | None = None,
) -> tuple[str, str]:
    """The (kind, role) a new key would have, or the ServiceError that refuses it (forms call this to
    show the refusal next to its field before anything is made)."""
    kind = _key_kind(kind, user)
    if role and role not in Agent.Role.values:
        raise ServiceError("invalid_role", f"'{role}' is not a role.", field="role")
    if kind == ApiKey.Kind.PERSONAL:
        if role:
            raise ServiceError(
                "invalid_role",
                "A personal key has its user's role; it takes none of its own.",
                field="role",
            )
        _check_personal_key_owner(user=user, created_by=created_by, by_role=by_role)
        return kind, ""
    if user is not None:
        raise ServiceError("invalid_user", "An integration key belongs to no user.", field="user")
    role = role or Agent.Role.ADMIN
    _check_can_make_integration_key(role=role, by_role=by_role)
    return kind, role


MAX_API_KEY_DAYS = 3650


def _audit_details(key: ApiKey) -> dict[str, Any]:
    # The prefix names the key; nothing of its secret or hash is recorded.
    rotated_from = key.rotated_from.prefix if key.rotated_from is not None else None
    return {
        "name": key.name,
        "kind": key.kind,
        "role": key.role,
        "prefix": key.prefix,
        "rotated_from": rotated_from,
    }


@transaction.atomic
def create_api_key(
    *,
    name: str,
    kind: str | None = None,
    role: str | None = None,
    user: User | None = None,
    expires_at: dt.datetime | None = None,
    expires_in_days: int | None = None,
    created_by: User | None = None,
    by_role: str | None = None,
    rotated_from: ApiKey | None = None,
) -> IssuedApiKey:
    """A personal key (`user` given: acts as that user, with their role and teams at each request) or an
    integration key (tenant-wide, with `role`, supervisor or above; default admin).

    `by_role` is the role of the person making it (None for the operator's command): nobody makes a
    key above their own role; only its user makes a personal key; only admins and owners make
    integration keys, so an agent or a supervisor makes personal keys only."""
    name = name.strip()
    if not name:
        raise ServiceError("invalid_name", "An API key needs a name.", field="name")
    kind, role = check_api_key_identity(
        kind=kind, role=role, user=user, created_by=created_by, by_role=by_role
    )
    if expires_in_days is not None:
        if expires_in_days <= 0:
            raise ServiceError(
                "invalid_expiry",
                "Expiry must be at least one day.",
                field="expires_in_days",
            )
        if expires_in_days > MAX_API_KEY_DAYS:
            # Far enough past this a date overflows (OverflowError); a key meant to live that long: no expiry.
            raise ServiceError(
                "invalid_expiry",
                f"Expiry is at most {MAX_API_KEY_DAYS} days; leave it empty for never.",
                field="expires_in_days",
            )
        expires_at = timezone.now() + dt.timedelta(days=expires_in_days)
    if expires_at is not None and expires_at <= timezone.now():
        raise ServiceError("invalid_expiry", "Expiry must be in the future.", field="expires_at")
    prefix = secrets.token_hex(4)
    raw = f"{API_KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey.objects.create(
        name=name[:100],
        prefix=prefix,
        hashed_key=hash_api_key(raw),
        kind=kind,
        user=user if kind == ApiKey.Kind.PERSONAL else None,
        role=role,
        created_by=created_by,
        expires_at=expires_at,
        rotated_from=rotated_from,
    )
    audit.record(
        "api_key.rotated" if rotated_from else "api_key.issued", target=key, details=_audit_details(key)
    )
    return IssuedApiKey(api_key=key, raw=raw)


def api_keys_visible_to(*, user: User, role: str | None) -> QuerySet[ApiKey]:
    """Admins and owners manage every key; everyone else sees their own personal keys."""
    keys = ApiKey.objects.select_related("created_by", "user")
    if role is not None and ROLE_RANK[Agent.Role(role)] >= ROLE_RANK[Agent.Role.ADMIN]:
        return keys
    return keys.filter(kind=ApiKey.Kind.PERSONAL, user_id=user.pk)


def _check_can_manage_key(*, api_key: ApiKey, by: User | None, by_role: str | None) -> None:
    if by_role is None:  # the operator
        return
    own = api_key.is_personal and api_key.user_id is not None and api_key.user_id == getattr(by, "pk", None)
    if own or ROLE_RANK[Agent.Role(by_role)] >= ROLE_RANK[Agent.Role.ADMIN]:
        return
    raise ServiceError("forbidden", "That key is not yours to manage.", status=403)


def rotate_api_key(
    *, api_key: ApiKey, created_by: User | None = None, by_role: str | None = None
) -> IssuedApiKey:
    """A new key with the same name, kind, identity and lifetime; the old one keeps working until revoked.

    Rotating issues a new secret, so it takes the right to make that key: an admin must not mint an
    owner key by rotating the owner's, nor a key that acts as someone else by rotating their personal
    key (only its user rotates a personal key)."""
    if api_key.revoked_at is not None:
        raise ServiceError("revoked_key", "A revoked key cannot be rotated.", status=409)
    lifetime = api_key.expires_at - api_key.created_at if api_key.expires_at else None
    return create_api_key(
        name=api_key.name,
        kind=api_key.kind,
        role=api_key.role or None,
        user=api_key.user,
        expires_at=timezone.now() + lifetime if lifetime else None,
        created_by=created_by,
        by_role=by_role,
        rotated_from=api_key,
    )


@transaction.atomic
def revoke_api_key(*, api_key: ApiKey, by: User | None = None, by_role: str | None = None) -> ApiKey:
    """Its user revokes a personal key; admins and owners revoke any key."""
    _check_can_manage_key(api_key=api_key, by=by, by_role=by_role)
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
        audit.record("api_key.revoked", target=api_key, details=_audit_details(api_key))
    return api_key


# Writing last_used_at on every request would turn reads into writes; a minute's precision is enough.
LAST_USED_PRECISION = dt.timedelta(minutes=1)


def touch_api_key(*, api_key: ApiKey) -> None:
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_PRECISION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
