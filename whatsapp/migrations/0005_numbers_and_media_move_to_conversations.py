"""WhatsAppChannel and MediaFile are conversations' models now (conversations 0006 took them over, rows
and tables untouched): whatsapp forgets them, in state only."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("whatsapp", "0004_whatsapp_number_names"),
        ("conversations", "0006_channel_mediafile_state"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.DeleteModel(name="MediaFile"),
                migrations.DeleteModel(name="WhatsAppChannel"),
            ],
        ),
    ]
