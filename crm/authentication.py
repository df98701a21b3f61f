"""`Authorization: Bearer <key>` for the API. Keys live in the tenant's schema: another host finds none.

A personal key authenticates as its user (request.user is that user, read afresh with their current
role and teams; a key of a deactivated user, or of a user who is no longer a member, is refused with
401). An integration key authenticates as an ApiKeyUser carrying the key's role. request.auth is the key
either way (rate limits and idempotency scope by its prefix).
"""

from __future__ import annotations

import hmac
from typing import Any

from django.contrib.auth.models import AnonymousUser
from rest_framework import authentication, exceptions

from crm import services
from crm.models import ApiKey
from crm.selectors import remember_agent


class ApiKeyUser(AnonymousUser):
    """The principal of a request made with an integration key: authenticated, with the key's role, no
    user row.

    Code that needs a real user for authorship (created_by, sender) uses crm.permissions.acting_user(),
    which gives None for these.
    """

    def __init__(self, api_key: ApiKey) -> None:
        self.api_key = api_key
        self.username = f"api-key:{api_key.prefix}"  # type: ignore[assignment]
        self._crm_role = api_key.role

    @property
    def is_anonymous(self) -> bool:  # type: ignore[override]
        return False

    @property
    def is_authenticated(self) -> bool:  # type: ignore[override]
        return True

    def __str__(self) -> str:
        return self.username


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Any) -> tuple[Any, ApiKey] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, raw = header.partition(" ")
        if scheme.lower() != self.keyword.lower():
            return None
        raw = raw.strip()
        # wacrm_<prefix>_<secret>: the prefix finds the row, the hash of the whole key proves it.
        parts = raw.split("_")
        if len(parts) < 3 or f"{parts[0]}_" != services.API_KEY_PREFIX:
            raise exceptions.AuthenticationFailed("Invalid API key.")
        api_key = ApiKey.objects.select_related("user__agent").filter(prefix=parts[1]).first()
        if api_key is None or not hmac.compare_digest(api_key.hashed_key, services.hash_api_key(raw)):
            raise exceptions.AuthenticationFailed("Invalid API key.")
        if api_key.revoked_at is not None:
            raise exceptions.AuthenticationFailed("This API key was revoked.")
        if not api_key.is_usable():
            raise exceptions.AuthenticationFailed("This API key has expired.")
        principal = self._principal(api_key)
        services.touch_api_key(api_key=api_key)
        return principal, api_key

    def _principal(self, api_key: ApiKey) -> Any:
        if api_key.kind == ApiKey.Kind.INTEGRATION:
            if api_key.role not in ApiKey.INTEGRATION_ROLES:  # the table's constraint forbids it; never trust
                raise exceptions.AuthenticationFailed("Invalid API key.")
            return ApiKeyUser(api_key)
        user = api_key.user
        agent = getattr(user, "agent", None) if user is not None else None
        if user is None or not user.is_active or agent is None:
            raise exceptions.AuthenticationFailed(
                "This API key's user is no longer active in this workspace."
            )
        # The user's role now, loaded with the key (crm.selectors.role_of_user reads this cache).
        remember_agent(user, agent.role, agent.availability)
        return user

    def authenticate_header(self, request: Any) -> str:
        return self.keyword
