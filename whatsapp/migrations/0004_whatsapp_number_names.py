from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("whatsapp", "0003_template_status_reason_quality")]

    operations = [
        migrations.AlterModelOptions(
            name="whatsappchannel",
            options={
                "ordering": ["display_phone", "phone_number_id"],
                "verbose_name": "WhatsApp number",
                "verbose_name_plural": "WhatsApp numbers",
            },
        ),
        migrations.AlterModelOptions(
            name="pendingstatus",
            options={"ordering": ["timestamp", "id"], "verbose_name_plural": "pending statuses"},
        ),
    ]
