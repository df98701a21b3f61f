from typing import Any

from django.db import migrations, models


def copy_waba_ids(apps: Any, schema_editor: Any) -> None:
    """Routes made before the ownership check learn their account from the tenant's channel row, so
    account-level webhooks reach them. They stay unverified (no verified_at): nothing here asked Meta."""
    NumberRoute = apps.get_model("tenants", "NumberRoute")
    connection = schema_editor.connection
    routes = NumberRoute.objects.select_related("tenant").filter(waba_id="")
    with connection.cursor() as cursor:
        for route in routes:
            table = f"{connection.ops.quote_name(route.tenant.schema_name)}.whatsapp_whatsappchannel"
            cursor.execute("SELECT to_regclass(%s)", [table])
            if cursor.fetchone()[0] is None:
                continue
            cursor.execute(f"SELECT waba_id FROM {table} WHERE phone_number_id = %s", [route.phone_number_id])
            row = cursor.fetchone()
            if row and str(row[0]).isdigit():
                NumberRoute.objects.filter(pk=route.pk).update(waba_id=row[0])


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0002_number_route_app_secret"),
    ]

    operations = [
        migrations.AddField(
            model_name="numberroute",
            name="verified_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="numberroute",
            name="waba_id",
            field=models.CharField(blank=True, db_index=True, editable=False, max_length=64),
        ),
        migrations.AddField(
            model_name="webhookevent",
            name="waba_ids",
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.RunPython(copy_waba_ids, migrations.RunPython.noop),
    ]
