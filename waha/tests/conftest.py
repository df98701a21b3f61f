"""The WhatsApp fixtures (tenants, sandbox, jobs) and the WAHA helpers."""

from whatsapp.testing import (  # noqa: F401 - fixtures and helpers, re-exported
    _empty_broker,
    _fresh_redis_state,
    _fresh_webhook_secrets,
    queued_jobs,
    run_jobs,
)
