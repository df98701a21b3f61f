"""What apps above crm add to the CRM's contact page.

crm sits below conversations, so the contact page cannot ask for a contact's conversations itself: an app
above registers a provider in its AppConfig.ready() (conversations adds the conversations the viewer may
see, by the inbox's one visibility rule), and the page merges what every provider returns into its
template context. With no provider registered the page still renders (its sections are then empty).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest

from crm.models import Contact

ContextProvider = Callable[[HttpRequest, Contact], dict[str, Any]]

_providers: list[ContextProvider] = []


def register(provider: ContextProvider) -> None:
    """Add `provider(request, contact) -> context`; registering the same one twice adds it once."""
    if provider not in _providers:
        _providers.append(provider)


def extra_context(request: HttpRequest, contact: Contact) -> dict[str, Any]:
    context: dict[str, Any] = {}
    for provider in _providers:
        context.update(provider(request, contact))
    return context
