from django.apps import AppConfig


class OnboardingConfig(AppConfig):
    """A tenant and its owner: the onboarding service, self-service signup (public schema), the demo seed
    and a new owner's first-run checklist. Above `crm` in the dependency direction: it creates CRM rows."""

    name = "onboarding"
    default_auto_field = "django.db.models.BigAutoField"
