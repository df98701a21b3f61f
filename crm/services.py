from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction

from crm.models import Agent


@transaction.atomic
def create_agent(*, email: str, password: str | None, role: str, name: str = "") -> Agent:
    """A tenant user with a role. Owners and admins may use the tenant's Django admin."""
    user_model = get_user_model()
    first, _, last = name.partition(" ")
    is_admin = role in (Agent.Role.OWNER, Agent.Role.ADMIN)
    user = user_model(
        username=email,
        email=email,
        first_name=first[:150],
        last_name=last[:150],
        is_staff=is_admin,
        is_superuser=is_admin,
    )
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.save()
    return Agent.objects.create(user=user, role=role)
