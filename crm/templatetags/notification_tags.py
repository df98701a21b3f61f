"""{% notification_preferences_card %}: the e-mail preferences card of Settings → Me, with its own data, so
the page's view needs no change."""

from __future__ import annotations

from typing import Any

from django import template

from crm.services import notifications

register = template.Library()


@register.inclusion_tag("crm/settings/_notification_preferences.html", takes_context=True)
def notification_preferences_card(context: template.Context) -> dict[str, Any]:
    request = context["request"]
    user = request.user
    prefs = notifications.email_preferences(user_ids=[user.pk])[user.pk]
    rows = [
        {"kind": kind, "label": label, "email": prefs[kind]}
        for kind, label in notifications.PREFERENCE_LABELS.items()
    ]
    return {
        "request": request,
        "user": user,
        "csrf_token": context.get("csrf_token"),
        "notification_preferences": rows,
    }
