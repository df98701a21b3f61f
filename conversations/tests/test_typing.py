"""The typing indicator the customer sees ("typing…"): Meta's body exactly, for agents and for the bot
(by=None), at most once per interval under Meta's 25 s, and only inside the customer-service window."""

from __future__ import annotations

import datetime as dt
import inspect
import re
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.test import TestCase
from django.utils import timezone
from django_tenants.utils import schema_context

from conversations.models import Channel, Conversation, Message
from conversations.services import TYPING_INTERVAL_SECONDS, indicate_typing
from conversations.tests.conftest import add_message, make_conversation
from whatsapp.client import client_for
from whatsapp.testing import run_jobs

META_TYPING_LIMIT = 25  # seconds Meta shows "typing…" for one request


def _typing(tenant: Any, conversation: Conversation, by: Any = None) -> bool:
    with schema_context(tenant.schema_name), TestCase.captureOnCommitCallbacks(execute=True):
        return indicate_typing(conversation=Conversation.objects.get(pk=conversation.pk), by=by)


def test_the_bot_can_show_typing_with_metas_exact_body_and_the_unread_count_stays(
    tenant_a: Any, channel_a: Channel, sandbox: Any
) -> None:
    conversation = make_conversation(tenant_a, messages=2, unread_count=2, channel=channel_a)
    assert _typing(tenant_a, conversation, by=None) is True
    run_jobs()
    with schema_context(tenant_a.schema_name):
        latest = Message.objects.filter(conversation=conversation).order_by("-timestamp", "-id")[0]
        # The agents have not read it: only the customer sees it read (Meta shows typing only with a read).
        assert Conversation.objects.get(pk=conversation.pk).unread_count == 2
    assert sandbox.state.read_receipts == [
        {
            "phone_number_id": channel_a.phone_number_id,
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": latest.wamid,
            "typing_indicator": {"type": "text"},
        }
    ]


def test_an_agents_typing_clears_the_unread_count(
    tenant_a: Any, owner_a: Any, channel_a: Channel, sandbox: Any
) -> None:
    conversation = make_conversation(tenant_a, messages=1, unread_count=1, channel=channel_a)
    assert _typing(tenant_a, conversation, by=owner_a) is True
    with schema_context(tenant_a.schema_name):
        assert Conversation.objects.get(pk=conversation.pk).unread_count == 0


def test_typing_is_refreshed_at_most_once_per_interval_below_metas_25_seconds(
    tenant_a: Any, channel_a: Channel, sandbox: Any
) -> None:
    assert TYPING_INTERVAL_SECONDS < META_TYPING_LIMIT
    script = (Path(settings.BASE_DIR) / "static" / "js" / "inbox-thread.js").read_text()
    found = re.search(r"TYPING_MS\s*=\s*(\d+)", script)
    assert found is not None and int(found.group(1)) < META_TYPING_LIMIT * 1000
    conversation = make_conversation(tenant_a, messages=1, channel=channel_a)
    assert _typing(tenant_a, conversation) is True
    assert _typing(tenant_a, conversation) is False  # the bot and an agent share the interval
    with schema_context(tenant_a.schema_name):
        # As when the interval has passed (the key expires after TYPING_INTERVAL_SECONDS).
        cache.delete(f"wa:typing:{conversation.pk}")
    assert _typing(tenant_a, conversation) is True
    run_jobs()
    assert len(sandbox.state.read_receipts) == 2


def test_no_typing_outside_the_window_without_a_number_or_without_a_received_message(
    tenant_a: Any, channel_a: Channel, sandbox: Any
) -> None:
    old = make_conversation(tenant_a, messages=0, channel=channel_a)
    add_message(tenant_a, old, wamid="wamid.old.9", timestamp=timezone.now() - dt.timedelta(hours=25))
    no_number = make_conversation(tenant_a, messages=1)
    with schema_context(tenant_a.schema_name):
        Conversation.objects.filter(pk=no_number.pk).update(channel=None)
    nothing_received = make_conversation(tenant_a, messages=0, channel=channel_a)
    for conversation in (old, no_number, nothing_received):
        assert _typing(tenant_a, conversation) is False
    run_jobs()
    assert sandbox.state.read_receipts == []


def test_a_disabled_number_sends_no_typing(tenant_a: Any, channel_a: Channel, sandbox: Any) -> None:
    conversation = make_conversation(tenant_a, messages=1, channel=channel_a)
    assert _typing(tenant_a, conversation) is True
    with schema_context(tenant_a.schema_name):
        Channel.objects.filter(pk=channel_a.pk).update(status=Channel.Status.DISABLED)
    run_jobs()
    assert sandbox.state.read_receipts == []


def test_the_client_sends_metas_typing_body(tenant_a: Any, channel_a: Channel, sandbox: Any) -> None:
    with schema_context(tenant_a.schema_name):
        client_for(channel_a).mark_read(
            phone_number_id=channel_a.phone_number_id, wamid="wamid.T1", typing=True
        )
    assert sandbox.state.read_receipts[-1] == {
        "phone_number_id": channel_a.phone_number_id,
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": "wamid.T1",
        "typing_indicator": {"type": "text"},
    }


def test_indicate_typing_keeps_its_keyword_only_signature_for_the_bot() -> None:
    parameters = inspect.signature(indicate_typing).parameters
    assert list(parameters) == ["conversation", "by"]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters.values())
    assert parameters["by"].default is None
