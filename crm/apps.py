from django.apps import AppConfig


class CrmConfig(AppConfig):
    name = "crm"
    verbose_name = "CRM"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_out, user_login_failed

        from crm import schema  # noqa: F401  (registers the API key scheme with drf-spectacular)
        from crm.auth import on_login_failed
        from crm.sessions import on_logged_out

        user_login_failed.connect(on_login_failed, dispatch_uid="crm.login_failures")
        # Django's one hook for every sign-out path: the session's open sockets close with it.
        user_logged_out.connect(on_logged_out, dispatch_uid="crm.close_sockets_on_logout")
