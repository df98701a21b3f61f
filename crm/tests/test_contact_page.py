"""crm.contact_page: apps above crm add to the contact page through a registry (crm cannot import them);
conversations registers the contact's conversations the viewer may see."""

from __future__ import annotations

from typing import Any

from django_tenants.utils import schema_context

from conftest import login
from crm import contact_page, services


def test_a_provider_registered_twice_is_called_once_and_contexts_merge(monkeypatch, rf):
    monkeypatch.setattr(contact_page, "_providers", [])
    calls: list[Any] = []

    def provider(request: Any, contact: Any) -> dict[str, Any]:
        calls.append(contact)
        return {"extra": contact}

    contact_page.register(provider)
    contact_page.register(provider)
    contact_page.register(lambda request, contact: {"more": 1})
    assert contact_page.extra_context(rf.get("/"), "c") == {"extra": "c", "more": 1}
    assert calls == ["c"]


def test_conversations_registers_its_section_when_the_app_loads():
    from conversations.contact_page import contact_conversations_context

    assert contact_conversations_context in contact_page._providers


def test_the_contact_page_lists_the_contacts_conversations(tenant_a, client_a, owner_a):
    from conversations.models import Conversation

    with schema_context(tenant_a.schema_name):
        contact = services.create_contact(phone="+14155550123", name="Grace")
        conversation = Conversation.objects.create(contact=contact)
    login(client_a, tenant_a, owner_a)
    page = client_a.get(f"/contacts/{contact.pk}/").content.decode()
    assert f"/inbox/c/{conversation.pk}/" in page
