"""The number (whatsapp.WhatsAppChannel) and media files (whatsapp.MediaFile) become conversations'
models without touching a row: state only here, on the tables they already have; whatsapp's 0005 then
forgets them and 0007 renames the tables and adds the provider."""

import django.db.models.deletion
from django.db import migrations, models

CHANNEL_STATUS = [("active", "Active"), ("needs_reauth", "Needs re-authorisation"), ("disabled", "Disabled")]


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0005_reply_path_consent"),
        ("whatsapp", "0004_whatsapp_number_names"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name="Channel",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("name", models.CharField(blank=True, max_length=100)),
                        ("display_phone", models.CharField(blank=True, max_length=32)),
                        ("status", models.CharField(choices=CHANNEL_STATUS, default="active", max_length=20)),
                        ("status_reason", models.CharField(blank=True, max_length=300)),
                        (
                            "throughput_cap",
                            models.PositiveIntegerField(default=80, help_text="Messages per second"),
                        ),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("phone_number_id", models.CharField(max_length=64, unique=True)),
                        ("waba_id", models.CharField(max_length=64)),
                        ("access_token_encrypted", models.TextField(blank=True, editable=False)),
                        ("app_secret_encrypted", models.TextField(blank=True, editable=False)),
                        ("templates_synced_at", models.DateTimeField(blank=True, null=True)),
                    ],
                    options={
                        "ordering": ["display_phone", "phone_number_id"],
                        "verbose_name": "WhatsApp number",
                        "verbose_name_plural": "WhatsApp numbers",
                        "db_table": "whatsapp_whatsappchannel",
                    },
                ),
                migrations.CreateModel(
                    name="MediaFile",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        (
                            "direction",
                            models.CharField(choices=[("in", "Inbound"), ("out", "Outbound")], max_length=3),
                        ),
                        (
                            "kind",
                            models.CharField(
                                help_text="image, video, audio, document or sticker", max_length=20
                            ),
                        ),
                        (
                            "media_id",
                            models.CharField(
                                blank=True, db_index=True, help_text="Meta's media id", max_length=128
                            ),
                        ),
                        ("file", models.FileField(blank=True, max_length=300, upload_to="whatsapp/")),
                        ("filename", models.CharField(blank=True, max_length=255)),
                        ("mime_type", models.CharField(blank=True, max_length=120)),
                        ("size", models.PositiveBigIntegerField(blank=True, null=True)),
                        ("sha256", models.CharField(blank=True, max_length=128)),
                        (
                            "status",
                            models.CharField(
                                choices=[("pending", "Pending"), ("ready", "Ready"), ("failed", "Failed")],
                                default="pending",
                                max_length=20,
                            ),
                        ),
                        ("attempts", models.PositiveIntegerField(default=0)),
                        ("error", models.CharField(blank=True, max_length=300)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        (
                            "channel",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="media",
                                to="conversations.channel",
                            ),
                        ),
                        (
                            "message",
                            models.OneToOneField(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="media",
                                to="conversations.message",
                            ),
                        ),
                    ],
                    options={"ordering": ["-created_at"], "db_table": "whatsapp_mediafile"},
                ),
                migrations.AlterField(
                    model_name="conversation",
                    name="channel",
                    field=models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="conversations",
                        to="conversations.channel",
                    ),
                ),
            ],
        ),
    ]
