from django.apps import AppConfig


class WhatsappConfig(AppConfig):
    name = "whatsapp"
    verbose_name = "WhatsApp"

    def ready(self) -> None:
        # conversations reaches the Cloud API only through the channel registry.
        from conversations import channels
        from whatsapp.adapter import PROVIDER, CloudApiAdapter

        channels.register(PROVIDER, CloudApiAdapter())
