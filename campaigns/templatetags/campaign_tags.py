"""Campaign pages' words for the codes they store."""

from __future__ import annotations

from django import template

from campaigns.services import SKIP_LABELS

register = template.Library()


@register.filter
def skip_label(code: str) -> str:
    """Why a recipient was skipped, in words (the export keeps the code)."""
    return SKIP_LABELS.get(code) or (code or "").replace("_", " ").capitalize()
