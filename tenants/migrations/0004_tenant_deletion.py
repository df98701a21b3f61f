from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("tenants", "0003_number_route_ownership")]

    operations = [
        migrations.AddField(
            model_name="tenant",
            name="deletion_requested_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="tenant",
            name="purge_after",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
    ]
