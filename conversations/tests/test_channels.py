"""The channel registry: conversations reaches a number's provider only through it."""

from __future__ import annotations

from typing import Any

import pytest
from django_tenants.utils import schema_context

from conversations import channels, services
from conversations.models import Channel, Conversation, Message
from core.errors import ServiceError


class FakeAdapter:
    """A provider that records what the reply path asks of it."""

    provider = "fake"
    label = "Fake"
    capabilities = frozenset({channels.REACTIONS})

    def __init__(self) -> None:
        self.sent: list[tuple[int, bool, str]] = []
        self.read: list[tuple[int, bool]] = []

    def enqueue_send(self, *, message_id: int, bulk: bool, schema: str) -> None:
        self.sent.append((message_id, bulk, schema))

    def enqueue_read_receipt(self, *, message_id: int, schema: str, typing: bool) -> None:
        self.read.append((message_id, typing))

    def upload_media(
        self, *, channel: Any, content: bytes, filename: str, mime_type: str, kind: str = ""
    ) -> Any:
        raise ServiceError("invalid_media", "The fake takes no files.", status=422)

    def retry_media_download(self, *, media: Any) -> Any:
        return media

    def prepare_template(self, *, channel: Any, template: Any, language: str | None, parameters: Any) -> Any:
        raise AssertionError("a provider without templates is never asked for one")

    def template_category(self, *, template_id: int) -> str:
        return ""

    def approved_templates(self, *, channel: Any) -> list[Any]:
        return []

    def number_status(self, *, channel: Any) -> str:
        return ""


@pytest.fixture
def fake_provider() -> Any:
    adapter = FakeAdapter()
    channels.register("fake", adapter)
    yield adapter
    channels.unregister("fake")


def test_an_unknown_provider_is_a_clear_service_error() -> None:
    with pytest.raises(channels.UnknownProvider) as refused:
        channels.adapter_for("carrier_pigeon")
    assert isinstance(refused.value, ServiceError)
    assert refused.value.code == "unknown_channel_provider"
    assert refused.value.status == 503
    assert "carrier_pigeon" in refused.value.message and "cloud_api" in refused.value.message


def test_a_number_is_looked_up_by_its_provider() -> None:
    adapter = channels.adapter_for(Channel(provider="cloud_api"))
    assert adapter.provider == "cloud_api"
    assert isinstance(adapter, channels.ChannelAdapter)
    assert channels.supports(Channel(provider="cloud_api"), channels.TEMPLATES)
    assert not channels.supports(Channel(provider="waha"), channels.TEMPLATES)  # WAHA has none
    assert not channels.supports(Channel(provider="pigeon"), channels.TEMPLATES)  # not installed
    with pytest.raises(channels.UnknownProvider):
        channels.adapter_for(Channel(provider="pigeon"))


def test_registering_refuses_unknown_capabilities_and_a_second_adapter() -> None:
    class Odd(FakeAdapter):
        capabilities = frozenset({"telepathy"})

    with pytest.raises(ValueError, match="telepathy"):
        channels.register("odd", Odd())
    assert "odd" not in channels.providers()

    class Other(FakeAdapter):
        pass

    with pytest.raises(ValueError, match="already has"):
        channels.register("cloud_api", Other())
    assert type(channels.adapter_for("cloud_api")).__name__ == "CloudApiAdapter"


def test_the_reply_path_queues_the_send_on_the_numbers_provider(
    tenant_a: Any,
    owner_a: Any,
    conversation_a: Any,
    fake_provider: FakeAdapter,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with schema_context(tenant_a.schema_name):
        Channel.objects.filter(pk=conversation_a.channel_id).update(provider="fake")
        conversation = Conversation.objects.select_related("contact", "channel").get(pk=conversation_a.pk)
        with django_capture_on_commit_callbacks(execute=True):
            message = services.send_reply(
                conversation=conversation, draft=services.Draft(kind="text", text="Hi"), by=owner_a
            )
    assert fake_provider.sent == [(message.pk, False, tenant_a.schema_name)]


def test_a_template_to_a_number_whose_provider_has_none_is_refused_and_stores_nothing(
    tenant_a: Any, owner_a: Any, conversation_a: Any, fake_provider: FakeAdapter
) -> None:
    with schema_context(tenant_a.schema_name):
        Channel.objects.filter(pk=conversation_a.channel_id).update(provider="fake")
        conversation = Conversation.objects.select_related("contact", "channel").get(pk=conversation_a.pk)
        before = Message.objects.count()
        with pytest.raises(services.MessageRejected) as refused:
            services.send_reply(
                conversation=conversation,
                draft=services.Draft(kind="template", template="welcome"),
                by=owner_a,
            )
        assert refused.value.code == "templates_unsupported"
        assert Message.objects.count() == before
    assert fake_provider.sent == []
