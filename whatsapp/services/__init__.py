"""Writes of the WhatsApp channel: numbers, webhook events and their processing, media, templates.

One module per concern; everything is re-exported here, so `from whatsapp import services` and
`from whatsapp.services import connect_channel` keep working."""

from whatsapp.services.channels import (
    ChannelError,
    VerifiedNumber,
    connect_channel,
    number_is_verified,
    set_channel_status,
    update_channel_credentials,
    verify_number,
)
from whatsapp.services.inbound import Inbound, ingest_messages, lock_senders, upsert_contact
from whatsapp.services.media import (
    MAX_MEDIA_ATTEMPTS,
    MB,
    MEDIA_LIMITS,
    MEDIA_TYPES,
    MediaRejected,
    check_media,
    download_media,
    kind_for_mime,
    retry_media_download,
    upload_media,
)
from whatsapp.services.templates import apply_template_update, sync_templates
from whatsapp.services.webhooks import (
    MAX_EVENT_ATTEMPTS,
    EventsOutcome,
    Replay,
    RouteCache,
    cached_webhook_secrets,
    process_account_changes,
    process_changes,
    process_webhook_events,
    record_event_failure,
    record_webhook_events,
    replay_webhook_event,
    webhook_secrets,
)

__all__ = [
    "MAX_EVENT_ATTEMPTS",
    "MAX_MEDIA_ATTEMPTS",
    "MB",
    "MEDIA_LIMITS",
    "MEDIA_TYPES",
    "ChannelError",
    "EventsOutcome",
    "Inbound",
    "MediaRejected",
    "Replay",
    "RouteCache",
    "VerifiedNumber",
    "apply_template_update",
    "cached_webhook_secrets",
    "check_media",
    "connect_channel",
    "download_media",
    "ingest_messages",
    "kind_for_mime",
    "lock_senders",
    "number_is_verified",
    "process_account_changes",
    "process_changes",
    "process_webhook_events",
    "record_event_failure",
    "record_webhook_events",
    "replay_webhook_event",
    "retry_media_download",
    "set_channel_status",
    "sync_templates",
    "update_channel_credentials",
    "upload_media",
    "upsert_contact",
    "verify_number",
    "webhook_secrets",
]
