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

from crm.models import Agent
from crm.selectors import role_of_user

RANK = {
    Agent.Role.AGENT.value: 1,
    Agent.Role.SUPERVISOR.value: 2,
    Agent.Role.ADMIN.value: 3,
    Agent.Role.OWNER.value: 4,
}


def role_of(request: Any) -> str | None:
    """The caller's role: the API key's role, or the signed-in agent's."""
    user = getattr(request, "user", None)
    return role_of_user(user)


def has_role(request: Any, minimum: str) -> bool:
    role = role_of(request)
    return role is not None and RANK[role] >= RANK[minimum]


def acting_user(request: Any) -> Any:
    """The user to record as author (note author, deal changer, message sender): None for an API key."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or getattr(user, "api_key", None) is not None:
        return None
    return user


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
