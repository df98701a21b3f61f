from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


@register.filter
def person(user: Any, empty: str = "—") -> str:
    """A user's full name, else their email; `empty` when there is no user."""
    if user is None:
        return empty
    return str(user.get_full_name() or user.email or empty)
