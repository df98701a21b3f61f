"""The WhatsApp fixtures and helpers live in whatsapp.testing (other apps' tests use them too)."""

from whatsapp.testing import (  # noqa: F401 - fixtures and helpers, re-exported
    CUSTOMER,
    PNID_A,
    PNID_B,
    WABA_A,
    WABA_B,
    _empty_broker,
    _fresh_redis_state,
    _fresh_webhook_secrets,
    _sandbox_server,
    channel_a,
    channel_b,
    connect_number,
    conversation_a,
    deliver,
    fixture,
    post_webhook,
    queued_jobs,
    run_jobs,
    sandbox,
)
