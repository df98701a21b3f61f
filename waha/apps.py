from django.apps import AppConfig


class WahaConfig(AppConfig):
    """The WhatsApp-Web gateway channel: numbers linked by QR code through a self-hosted WAHA server."""

    name = "waha"
    verbose_name = "WhatsApp Web gateway (WAHA)"
