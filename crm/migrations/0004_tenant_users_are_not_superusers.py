"""Tenant users are never superusers: their rights in the tenant admin come from their CRM role.

Owners and admins used to be made superusers, which let an admin change the owner's password through the
user admin. This clears the flag on every user of the schema it runs in (crm is a tenant app, so the
platform's operators in the public schema are untouched) and sets is_staff from the role: owners and
admins only. A superuser without an agent row (made by createsuperuser in a tenant) is not turned into an
owner: such a row could as well be a backdoor made through the old user admin; give a real person a role
from Settings → Team or with crm.services.create_agent.

Not reversible in kind: the old flags are not recorded, so going back leaves them cleared.
"""

from django.conf import settings
from django.db import migrations

ADMIN_ROLES = ("owner", "admin")


def clear_superusers(apps, schema_editor):
    app_label, model_name = settings.AUTH_USER_MODEL.split(".")
    user_model = apps.get_model(app_label, model_name)
    agent_model = apps.get_model("crm", "Agent")
    managers = agent_model.objects.filter(role__in=ADMIN_ROLES).values("user_id")
    user_model.objects.filter(is_superuser=True).update(is_superuser=False)
    user_model.objects.filter(is_staff=True).exclude(pk__in=managers).update(is_staff=False)
    user_model.objects.filter(is_staff=False, pk__in=managers).update(is_staff=True)


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0003_search_indexes_on_upper"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RunPython(clear_superusers, migrations.RunPython.noop, elidable=False),
    ]
