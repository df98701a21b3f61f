"""API keys get an identity: personal (acts as its user) or integration (tenant-wide, supervisor or above).

Existing keys:
- supervisor, admin and owner keys become integration keys with the role they had;
- agent keys cannot be integration keys (the visibility rule needs a person to decide what an agent sees)
  and must not silently gain visibility. One whose creator is still an active user with the agent role
  becomes that user's personal key: it then sees exactly what that agent sees. Every other agent key
  (made by the command, with no creator, or by a supervisor, admin or owner, whose personal key would
  see everything) is revoked, with no user; the admin or the settings page lists it as revoked, and its
  owner makes a new key of the kind they need.

Backwards: personal keys become agent keys again (what they were, or at most what their user was).
"""

from django.conf import settings
from django.db import migrations, models
from django.utils import timezone

INTEGRATION_ROLES = ("supervisor", "admin", "owner")


def give_keys_an_identity(apps, schema_editor):
    api_key = apps.get_model("crm", "ApiKey")
    agent = apps.get_model("crm", "Agent")
    api_key.objects.filter(role__in=INTEGRATION_ROLES).update(kind="integration", user=None)
    now = timezone.now()
    for key in api_key.objects.exclude(role__in=INTEGRATION_ROLES):
        creator_is_agent = (
            key.created_by_id is not None
            and agent.objects.filter(user_id=key.created_by_id, role="agent", user__is_active=True).exists()
        )
        key.kind = "personal"
        key.role = ""
        if creator_is_agent:
            key.user_id = key.created_by_id
        else:
            key.user_id = None
            key.revoked_at = key.revoked_at or now
        key.save(update_fields=["kind", "role", "user", "revoked_at"])


def back_to_roles(apps, schema_editor):
    api_key = apps.get_model("crm", "ApiKey")
    api_key.objects.filter(kind="personal").update(role="agent")


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0004_tenant_users_are_not_superusers"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="apikey",
            name="kind",
            field=models.CharField(
                choices=[
                    ("personal", "Personal (acts as its user)"),
                    ("integration", "Integration (tenant-wide)"),
                ],
                default="integration",
                max_length=12,
            ),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="apikey",
            name="user",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=models.deletion.CASCADE,
                related_name="api_keys",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AlterField(
            model_name="apikey",
            name="role",
            field=models.CharField(
                blank=True,
                choices=[
                    ("owner", "Owner"),
                    ("admin", "Admin"),
                    ("supervisor", "Supervisor"),
                    ("agent", "Agent"),
                ],
                default="",
                help_text="Integration keys only; a personal key has its user's role",
                max_length=20,
            ),
        ),
        migrations.RunPython(give_keys_an_identity, back_to_roles, elidable=False),
    ]
