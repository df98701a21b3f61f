"""Roles for every app's API views (and pages): owner > admin > supervisor > agent.

The matrix is in README.md ("Roles"). Use in a DRF view:

    permission_classes = [RolePermission]
    required_roles = {"read": "agent", "write": "agent", "destroy": "supervisor", "merge": "supervisor"}

Keys of `required_roles` are view actions (list, retrieve, create, update, partial_update, destroy,
or an @action's name) or the groups "read" (safe methods) and "write" (the rest); an action's own
entry wins over its group. The default is IsTenantMember: any agent of this tenant, or an API key.
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission

from crm.models import Agent, ApiKey
from crm.selectors import role_of_user

RANK = {
    Agent.Role.AGENT.value: 1,
    Agent.Role.SUPERVISOR.value: 2,
    Agent.Role.ADMIN.value: 3,
    Agent.Role.OWNER.value: 4,
}


def role_of(request: Any) -> str | None:
    """The caller's role: an integration key's role, else the user's (signed in, or through their
    personal key), as it is now."""
    user = getattr(request, "user", None)
    return role_of_user(user)


def has_role(request: Any, minimum: str) -> bool:
    role = role_of(request)
    return role is not None and RANK[role] >= RANK[minimum]


def integration_key(request: Any) -> ApiKey | None:
    """The integration key the request is made with; None for a person (a session or a personal key)."""
    user = getattr(request, "user", None)
    key = getattr(user, "api_key", None)  # only crm.authentication.ApiKeyUser carries one
    return key if isinstance(key, ApiKey) and key.kind == ApiKey.Kind.INTEGRATION else None


def acting_user(request: Any) -> Any:
    """The user to record as author (note author, deal changer, message sender): the signed-in user or
    the user of a personal key; None for an integration key (see acting_key_name)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or getattr(user, "api_key", None) is not None:
        return None
    return user


def acting_key_name(request: Any) -> str:
    """The integration key's name, for audit fields that can hold one beside a None user."""
    key = integration_key(request)
    return key.name if key is not None else ""


class IsTenantMember(BasePermission):
    """Signed in as an agent of this tenant, or holding one of its API keys."""

    message = "You are not a member of this workspace."

    def has_permission(self, request: Any, view: Any) -> bool:
        return role_of(request) is not None


class MinimumRole(IsTenantMember):
    minimum = Agent.Role.AGENT.value
    message = "Your role does not allow this."

    def has_permission(self, request: Any, view: Any) -> bool:
        return has_role(request, self.minimum)


class IsSupervisor(MinimumRole):
    minimum = Agent.Role.SUPERVISOR.value


class IsAdmin(MinimumRole):
    minimum = Agent.Role.ADMIN.value


class IsOwner(MinimumRole):
    minimum = Agent.Role.OWNER.value


class RolePermission(IsTenantMember):
    """Minimum role per action from the view's `required_roles`; agents by default."""

    message = "Your role does not allow this."

    def has_permission(self, request: Any, view: Any) -> bool:
        if role_of(request) is None:
            return False
        required: dict[str, str] = getattr(view, "required_roles", {})
        action = getattr(view, "action", None)
        group = "read" if request.method in SAFE_METHODS else "write"
        minimum = required.get(action or "", required.get(group, Agent.Role.AGENT.value))
        return has_role(request, minimum)
