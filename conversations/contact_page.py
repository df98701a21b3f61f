"""The CRM's contact page lists the contact's conversations the viewer may see (crm.contact_page: crm
sits below conversations and asks through that registry)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from conversations import selectors
from crm import contact_page
from crm.models import Contact


def contact_conversations_context(request: HttpRequest, contact: Contact) -> dict[str, Any]:
    viewer = selectors.viewer_for(request.user)
    return {"conversations": selectors.contact_conversations(viewer, contact.pk)}


def register_contact_page() -> None:
    contact_page.register(contact_conversations_context)
