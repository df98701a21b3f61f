"""Helpers every staff page uses: icons from the SVG sprite, relative times, the signed-in role and the
layout an error page extends. `{% load ui %}`."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import template
from django.templatetags.static import static
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.timesince import timesince
from django_tenants.utils import get_public_schema_name

from crm.models import Agent
from crm.permissions import RANK
from crm.selectors import availability_of_user, role_of_user

register = template.Library()

SPRITE = "icons/sprite.svg"


def icon_html(name: str, label: str = "", css: str = "") -> SafeString:
    """An icon of static/icons/sprite.svg. With a label it is announced (role="img"); without one it is
    decoration beside text that says the same and screen readers skip it."""
    classes = f"icon {css}".strip()
    href = f"{static(SPRITE)}#{name}"
    if label:
        return format_html(
            '<svg class="{}" role="img" aria-label="{}"><use href="{}"></use></svg>', classes, label, href
        )
    return format_html(
        '<svg class="{}" aria-hidden="true" focusable="false"><use href="{}"></use></svg>', classes, href
    )


@register.simple_tag
def icon(name: str, label: str = "", css: str = "") -> SafeString:
    return icon_html(name, label, css)


@register.simple_tag
def sprite_url() -> str:
    return static(SPRITE)


@register.filter
def since(when: dt.datetime | dt.date | None) -> str:
    """ "just now", "1 minute ago", "3 hours ago": the largest unit only, plurals right, never
    "0 minutes ago"."""
    if when is None:
        return ""
    if isinstance(when, dt.datetime) and (timezone.now() - when).total_seconds() < 60:
        return "just now"
    return f"{timesince(when, depth=1)} ago"


@register.simple_tag(takes_context=True)
def staff_role(context: template.Context) -> str:
    """The signed-in person's role here, for showing only the links they may use. The inbox pages hand
    their Viewer over and the CRM pages have looked the role up already, so this costs no query there."""
    viewer = context.get("viewer")
    if viewer is not None and getattr(viewer, "role", None):
        return str(viewer.role)
    request = context.get("request")
    if request is None:
        return ""
    return role_of_user(getattr(request, "user", None)) or ""


@register.simple_tag(takes_context=True)
def availability_switch(context: template.Context) -> list[tuple[str, str, bool]]:
    """The header's availability switch: (value, label, whether it is the signed-in person's now) for
    each availability. Read with their role (staff_role), so it costs no query of its own."""
    request = context.get("request")
    current = availability_of_user(getattr(request, "user", None)) if request is not None else None
    return [(value, str(label), value == current) for value, label in Agent.Availability.choices]


@register.filter
def at_least(role: str, minimum: str) -> bool:
    """`{% if role|at_least:"supervisor" %}`: the role ranks at or above `minimum`."""
    return role in RANK and RANK[role] >= RANK[minimum]


@register.filter
def error_layout(request: Any) -> str:
    """The layout an error page extends: the app's, with its navigation, for someone signed in on a
    workspace's host (a refusal there should leave them a way on); the plain card elsewhere."""
    tenant = getattr(request, "tenant", None)
    user = getattr(request, "user", None)
    on_workspace = tenant is not None and tenant.schema_name != get_public_schema_name()
    if not (on_workspace and user is not None and user.is_authenticated):
        return "base_plain.html"
    try:
        has_role = bool(role_of_user(user))
    except Exception:  # the 500 page while the database is down: the plain page needs no query
        return "base_plain.html"
    return "app/base.html" if has_role else "base_plain.html"
