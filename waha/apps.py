from django.apps import AppConfig


class WahaConfig(AppConfig):
    """The WhatsApp-Web gateway channel: numbers linked by QR code through a self-hosted WAHA server."""

    name = "waha"
    verbose_name = "WhatsApp Web gateway (WAHA)"

    def ready(self) -> None:
        # conversations reaches WAHA only through the channel registry (as whatsapp does for the Cloud API).
        from conversations import channels
        from waha.adapter import PROVIDER, WahaAdapter

        channels.register(PROVIDER, WahaAdapter())
        # POST /api/v1/whatsapp/channels/ {"provider": "waha", ...} (whatsapp's endpoint, its registry).
        from waha.api import connect_channel
        from whatsapp.api import register_connector

        register_connector(PROVIDER, connect_channel)
        # manage.py simulate_inbound for WAHA numbers (whatsapp's command, its registry).
        from waha.simulate import simulate_inbound
        from whatsapp import simulators

        simulators.register(PROVIDER, simulate_inbound)
