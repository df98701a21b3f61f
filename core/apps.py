from django.apps import AppConfig


class CoreConfig(AppConfig):
    """Listed in SHARED_APPS and TENANT_APPS: its audit table exists in public (platform events) and in
    every tenant schema (the tenant's own events)."""

    name = "core"
    verbose_name = "Audit"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in, user_login_failed

        from core import audit

        user_logged_in.connect(audit.on_logged_in, dispatch_uid="core.audit.sign_in")
        user_login_failed.connect(audit.on_login_failed, dispatch_uid="core.audit.sign_in_failed")
