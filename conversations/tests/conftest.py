"""Rows for inbox tests, made with the ORM inside a tenant schema (no mocks of the database)."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from conversations.models import Conversation, Message
from crm.models import Contact
from whatsapp.testing import (  # noqa: F401  (the WhatsApp side's fixtures: sandbox, numbers, broker)
    _empty_broker,
    _fresh_redis_state,
    _sandbox_server,
    channel_a,
    channel_b,
    conversation_a,
    sandbox,
)

_numbers = itertools.count(1000)


def make_conversation(tenant: Any, *, name: str = "", messages: int = 1, **fields: Any) -> Conversation:
    """A contact, a conversation and `messages` inbound texts, the last one now."""
    with schema_context(tenant.schema_name):
        n = next(_numbers)
        contact = Contact.objects.create(name=name or f"Contact {n}", phone=f"+1555{n:07d}")
        now = timezone.now()
        conversation = Conversation.objects.create(
            contact=contact,
            last_message_at=now if messages else None,
            last_inbound_at=now if messages else None,
            **fields,
        )
        for i in range(messages):
            Message.objects.create(
                conversation=conversation,
                direction=Message.Direction.INBOUND,
                type=Message.Type.TEXT,
                text=f"hello {i} from {contact.name}",
                status=Message.Status.RECEIVED,
                wamid=f"wamid.{n}.{i}",
                timestamp=now - dt.timedelta(seconds=messages - i),
            )
        return conversation


def add_message(tenant: Any, conversation: Conversation, **fields: Any) -> Message:
    with schema_context(tenant.schema_name):
        defaults: dict[str, Any] = {
            "direction": Message.Direction.INBOUND,
            "type": Message.Type.TEXT,
            "status": Message.Status.RECEIVED,
            "timestamp": timezone.now(),
        }
        defaults.update(fields)
        return Message.objects.create(conversation=conversation, **defaults)


@pytest.fixture
def agent_a(tenant_a: Any) -> Any:
    from conftest import make_agent

    return make_agent(tenant_a, email="agent@alpha.test", role="agent").user


@pytest.fixture
def other_agent_a(tenant_a: Any) -> Any:
    from conftest import make_agent

    return make_agent(tenant_a, email="other@alpha.test", role="agent").user
