"""Numbers and media files moved from whatsapp to conversations without losing a row: a tenant schema
migrated before the move keeps them after it (django-tenants runs the same migrations in every tenant
schema and in the template schema new tenants are cloned from)."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("conversations", "0005_reply_path_consent"), ("whatsapp", "0004_whatsapp_number_names")]
SCHEMA = "mig_channel_move"


@pytest.fixture
def old_schema(db: None) -> Any:
    # Postgres runs DDL inside the test's transaction: the schema goes with its rollback.
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE SCHEMA {SCHEMA}")
    connection.set_schema(SCHEMA)
    yield SCHEMA
    connection.set_schema_to_public()


def _table_of(state_apps: Any, label: str) -> str:
    return str(state_apps.get_model(label)._meta.db_table)


def test_numbers_and_media_survive_the_move_with_their_ids_and_links(old_schema: str) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    Number = old.get_model("whatsapp", "WhatsAppChannel")
    Media = old.get_model("whatsapp", "MediaFile")
    Contact = old.get_model("crm", "Contact")
    Conversation = old.get_model("conversations", "Conversation")
    number = Number.objects.create(
        phone_number_id="1099", waba_id="2099", display_phone="+1 555 0199", access_token_encrypted="x"
    )
    contact = Contact.objects.create(name="Ann", phone="+15550000001")
    conversation = Conversation.objects.create(contact=contact, channel=number)
    media = Media.objects.create(channel=number, direction="in", kind="image", media_id="m1", status="ready")

    # The rows above were written in the test's transaction, whose deferred foreign-key checks would
    # make a later migration's ALTER TABLE fail ("pending trigger events"); a real migration runs in a
    # transaction of its own.
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    new = executor.loader.project_state(executor.loader.graph.leaf_nodes()).apps
    Channel = new.get_model("conversations", "Channel")
    MediaFile = new.get_model("conversations", "MediaFile")
    assert _table_of(new, "conversations.Channel") == "conversations_channel"
    assert _table_of(new, "conversations.MediaFile") == "conversations_mediafile"
    moved = Channel.objects.get(pk=number.pk)
    assert (moved.phone_number_id, moved.waba_id, moved.access_token_encrypted) == ("1099", "2099", "x")
    assert moved.provider == "cloud_api"
    assert MediaFile.objects.get(pk=media.pk).channel_id == number.pk
    assert (
        new.get_model("conversations", "Conversation").objects.get(pk=conversation.pk).channel_id == number.pk
    )
    # New rows keep counting after the moved ones (the id sequences came along with the tables).
    assert Channel.objects.create(phone_number_id="1100", waba_id="2099").pk > number.pk
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s AND table_name IN "
            "('whatsapp_whatsappchannel', 'whatsapp_mediafile')",
            [old_schema],
        )
        assert cursor.fetchone()[0] == 0
