"""The WhatsApp fixtures (tenants, sandbox, jobs) and the WAHA helpers."""

from waha.testing import (  # noqa: F401 - the WAHA sandbox fixtures, re-exported
    _waha_sandbox_server,
    waha_number_a,
    waha_number_b,
    waha_sandbox,
)
from waha.tests.fake_waha import (  # noqa: F401 - a scriptable fake WAHA (client and delivery tests)
    _fake_waha_server,
    fake_waha,
    waha_a,
    waha_conversation_a,
)
from whatsapp.testing import (  # noqa: F401 - fixtures and helpers, re-exported
    _empty_broker,
    _fresh_redis_state,
    _fresh_webhook_secrets,
    queued_jobs,
    run_jobs,
)
