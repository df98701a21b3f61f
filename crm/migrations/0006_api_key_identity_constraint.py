"""Every API key is personal (with its user, or revoked) or integration (no user, supervisor or above).

Its own migration: 0005 changes rows that reference users, and PostgreSQL refuses an ALTER TABLE in the
transaction that still holds those rows' foreign-key checks.
"""

from django.db import migrations, models
from django.db.models import Q


class Migration(migrations.Migration):
    dependencies = [("crm", "0005_api_key_identity")]

    operations = [
        migrations.AddConstraint(
            model_name="apikey",
            constraint=models.CheckConstraint(
                condition=(
                    Q(kind="integration", user__isnull=True)
                    & (Q(role="supervisor") | Q(role="admin") | Q(role="owner"))
                )
                | (Q(kind="personal", role="") & (Q(user__isnull=False) | Q(revoked_at__isnull=False))),
                name="apikey_identity",
            ),
        ),
    ]
