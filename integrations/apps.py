from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from crm import outgoing_events
        from integrations import services

        outgoing_events.register(services.enqueue_events)
        from integrations import exports

        exports.register()
