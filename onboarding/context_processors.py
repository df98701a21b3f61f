"""`first_run_checklist` for templates on a tenant host: computed only when a template reads it (the
inbox does), for owners and admins, in one query (plus the role, usually cached on the user)."""

from __future__ import annotations

import functools
from typing import Any

from django.http import HttpRequest
from django_tenants.utils import get_public_schema_name

from crm.auth import ADMIN_ROLES
from crm.selectors import role_of_user
from onboarding.checklist import Checklist, checklist_for


def _for(request: HttpRequest) -> Checklist | None:
    if role_of_user(request.user) not in ADMIN_ROLES:
        return None
    return checklist_for(tenant=request.tenant)  # type: ignore[attr-defined]


def first_run_checklist(request: HttpRequest) -> dict[str, Any]:
    tenant = getattr(request, "tenant", None)
    if tenant is None or tenant.schema_name == get_public_schema_name():
        return {}
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    # A callable: templates call it when they read it (the inbox does; other pages pay nothing), once.
    return {"first_run_checklist": functools.cache(lambda: _for(request))}
