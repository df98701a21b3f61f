from whatsapp.testing import (  # noqa: F401 - fixtures
    _empty_broker,
    _fresh_limiter,
    _sandbox_server,
    channel_a,
    channel_b,
    conversation_a,
    sandbox,
)
