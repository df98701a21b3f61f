"""The channel registry: how conversations reaches a number's provider without importing it.

A channel app (whatsapp for Meta's Cloud API; a WAHA gateway later) implements ChannelAdapter and
registers it in its AppConfig.ready(): `channels.register("cloud_api", CloudApiAdapter())`. The reply
path, the inbox and the API look the adapter up by the number's provider (`adapter_for(number)`), so
the dependency points from the channel app to conversations, never back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from core.errors import ServiceError

# What a provider can do beyond plain text and media; the composer and the reply path ask before offering
# or sending something a provider lacks.
TEMPLATES = "templates"
INTERACTIVE = "interactive"
REACTIONS = "reactions"
READ_RECEIPTS = "read_receipts"
TYPING = "typing"
# Meta's 24-hour customer-service window: free-form messages only within 24 h of the customer's last
# message, templates outside it. A provider without it (a WhatsApp-Web gateway) sends free-form any time.
SERVICE_WINDOW = "service_window"
CAPABILITIES = frozenset({TEMPLATES, INTERACTIVE, REACTIONS, READ_RECEIPTS, TYPING, SERVICE_WINDOW})

DEFAULT_PROVIDER = "cloud_api"


class UnknownProvider(ServiceError):
    """No channel app registered this provider: a number left behind by an uninstalled channel app, or
    a provider name mistyped in code. A configuration fault, not the user's: 503."""

    status = 503

    def __init__(self, provider: str) -> None:
        known = ", ".join(sorted(_adapters)) or "none"
        super().__init__(
            "unknown_channel_provider",
            f"No channel is installed for the provider '{provider}' (installed: {known}).",
            details={"provider": provider},
        )


@dataclass(frozen=True)
class PreparedTemplate:
    """A template draft checked against the provider's copy of the template: what the provider sends,
    the thread's preview, and the category (consent rules refuse MARKETING to an opted-out contact)."""

    template_id: int
    name: str
    category: str
    payload: dict[str, Any]
    preview: str


@runtime_checkable
class ChannelAdapter(Protocol):
    """What the reply path, the inbox and the API need from a provider. Numbers and media files are
    conversations' own models (passed as Any here: the adapter may keep provider settings beside them)."""

    provider: str
    label: str
    capabilities: frozenset[str]

    def enqueue_send(self, *, message_id: int, bulk: bool, schema: str) -> None:
        """Queue the sending of a stored, queued outbound message (any type) after commit."""

    def enqueue_read_receipt(self, *, message_id: int, schema: str, typing: bool) -> None:
        """Tell the customer a received message was read (with `typing`: and that someone is writing)."""

    def upload_media(
        self, *, channel: Any, content: bytes, filename: str, mime_type: str, kind: str = ""
    ) -> Any:
        """Check the provider's limits and upload a file to send from `channel` (`kind`: image, video...,
        else from the MIME type); returns the MediaFile, ready to send. Raises a ServiceError (e.g.
        invalid_media_kind, media_too_large)."""

    def retry_media_download(self, *, media: Any) -> Any:
        """Download a received file again after a failure. Raises a ServiceError (not_retryable)."""

    def prepare_template(
        self, *, channel: Any, template: Any, language: str | None, parameters: Any
    ) -> PreparedTemplate:
        """Check a template (a template row of this provider or its name) and its parameters for
        `channel`; raises a ServiceError (unknown_template, template_not_approved, template_parameters)."""

    def template_category(self, *, template_id: int) -> str:
        """The category of a template sent earlier ("" when it is gone): a retry is checked again."""

    def approved_templates(self, *, channel: Any) -> list[Any]:
        """The templates that can be sent from `channel` now, for the composer's picker."""

    def number_status(self, *, channel: Any) -> str:
        """Why nothing can be sent from `channel` now, as shown to staff ("" when it can send)."""


_adapters: dict[str, ChannelAdapter] = {}


def register(provider: str, adapter: ChannelAdapter) -> None:
    """Install `adapter` for `provider` (from the channel app's AppConfig.ready()). Registering the
    same provider twice with another adapter is a programming error."""
    if not provider:
        raise ValueError("A channel provider needs a name.")
    unknown = set(adapter.capabilities) - CAPABILITIES
    if unknown:
        raise ValueError(f"Unknown channel capabilities {sorted(unknown)}; known: {sorted(CAPABILITIES)}.")
    current = _adapters.get(provider)
    if current is not None and type(current) is not type(adapter):
        raise ValueError(f"The provider '{provider}' already has the adapter {type(current).__name__}.")
    _adapters[provider] = adapter


def unregister(provider: str) -> None:
    """Remove a provider's adapter (tests that install a fake one put the real one back after)."""
    _adapters.pop(provider, None)


def adapter_for(provider_or_number: Any) -> ChannelAdapter:
    """The adapter of a provider name, or of a number (its `provider`). UnknownProvider otherwise."""
    provider = (
        provider_or_number
        if isinstance(provider_or_number, str)
        else getattr(provider_or_number, "provider", DEFAULT_PROVIDER) or DEFAULT_PROVIDER
    )
    try:
        return _adapters[provider]
    except KeyError:
        raise UnknownProvider(provider) from None


def providers() -> list[str]:
    return sorted(_adapters)


def supports(number: Any, capability: str) -> bool:
    """Whether the number's provider offers `capability` (False when no adapter is installed)."""
    provider = getattr(number, "provider", DEFAULT_PROVIDER) or DEFAULT_PROVIDER
    adapter = _adapters.get(provider)
    return adapter is not None and capability in adapter.capabilities
