"""The moved models get conversations' table names and the number its provider (every existing number
is a Cloud API one). Content types follow, so permissions and admin history keep pointing at them."""

from typing import Any

from django.db import migrations, models

MOVED = {"whatsappchannel": "channel", "mediafile": "mediafile"}


def move_content_types(apps: Any, schema_editor: Any) -> None:
    ContentType = apps.get_model("contenttypes", "ContentType")
    db = schema_editor.connection.alias
    for old, new in MOVED.items():
        stale = ContentType.objects.using(db).filter(app_label="whatsapp", model=old)
        if ContentType.objects.using(db).filter(app_label="conversations", model=new).exists():
            stale.delete()
        else:
            stale.update(app_label="conversations", model=new)


def restore_content_types(apps: Any, schema_editor: Any) -> None:
    ContentType = apps.get_model("contenttypes", "ContentType")
    db = schema_editor.connection.alias
    for old, new in MOVED.items():
        ContentType.objects.using(db).filter(app_label="conversations", model=new).update(
            app_label="whatsapp", model=old
        )


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0006_channel_mediafile_state"),
        ("whatsapp", "0005_numbers_and_media_move_to_conversations"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.AlterModelTable(name="channel", table=None),
        migrations.AlterModelTable(name="mediafile", table=None),
        migrations.AddField(
            model_name="channel",
            name="provider",
            field=models.CharField(
                choices=[("cloud_api", "WhatsApp Cloud API"), ("waha", "WhatsApp Web gateway (WAHA)")],
                default="cloud_api",
                max_length=20,
            ),
        ),
        migrations.RunPython(move_content_types, restore_content_types),
    ]
