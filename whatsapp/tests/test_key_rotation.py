"""FIELD_ENCRYPTION_KEY rotation: a new key first, `rotate_encryption_key`, then the old key dropped."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django_tenants.utils import schema_context

from tenants.models import NumberRoute
from whatsapp import crypto


def _new_key() -> str:
    return Fernet.generate_key().decode()


def _store(channel: Any, tenant: Any, *, token: str, app_secret: str) -> None:
    """The channel's secrets as a process with the keys now configured would have written them."""
    with schema_context(tenant.schema_name):
        type(channel)._base_manager.filter(pk=channel.pk).update(
            access_token_encrypted=crypto.encrypt(token), app_secret_encrypted=crypto.encrypt(app_secret)
        )


def _read(channel: Any, tenant: Any) -> tuple[str, str]:
    with schema_context(tenant.schema_name):
        fresh = type(channel)._base_manager.get(pk=channel.pk)
        return crypto.decrypt(fresh.access_token_encrypted), crypto.decrypt(fresh.app_secret_encrypted)


def _rotate() -> str:
    out = StringIO()
    call_command("rotate_encryption_key", stdout=out)
    return out.getvalue()


def test_it_finds_every_encrypted_column_by_its_name():
    found = {f"{model._meta.label}.{name}" for model, names in crypto.encrypted_fields() for name in names}
    assert "tenants.NumberRoute.app_secret_encrypted" in found
    assert any(label.endswith(".access_token_encrypted") for label in found)


def test_secrets_of_every_schema_survive_a_rotation_and_the_old_keys_removal(
    channel_a, channel_b, tenant_a, tenant_b, settings
):
    original = list(settings.FIELD_ENCRYPTION_KEYS)
    old, new = _new_key(), _new_key()
    settings.FIELD_ENCRYPTION_KEYS = [old, *original]
    _store(channel_a, tenant_a, token="token-a", app_secret="secret-a")
    _store(channel_b, tenant_b, token="token-b", app_secret="")
    NumberRoute.objects.filter(phone_number_id=channel_a.phone_number_id).update(
        app_secret_encrypted=crypto.encrypt("route-secret")
    )

    settings.FIELD_ENCRYPTION_KEYS = [new, old, *original]
    assert "re-encrypted 0 values" not in _rotate()

    settings.FIELD_ENCRYPTION_KEYS = [new]
    assert _read(channel_a, tenant_a) == ("token-a", "secret-a")
    assert _read(channel_b, tenant_b) == ("token-b", "")
    route = NumberRoute.objects.get(phone_number_id=channel_a.phone_number_id)
    assert crypto.decrypt(route.app_secret_encrypted) == "route-secret"


def test_a_second_run_changes_nothing(channel_a, tenant_a, settings):
    settings.FIELD_ENCRYPTION_KEYS = [_new_key(), *settings.FIELD_ENCRYPTION_KEYS]
    _rotate()
    with schema_context(tenant_a.schema_name):
        before = type(channel_a)._base_manager.values_list("access_token_encrypted", flat=True).get()

    second = _rotate()

    assert "re-encrypted 0 values" in second
    with schema_context(tenant_a.schema_name):
        assert type(channel_a)._base_manager.values_list("access_token_encrypted", flat=True).get() == before


def test_a_dry_run_counts_without_writing(channel_a, tenant_a, settings):
    settings.FIELD_ENCRYPTION_KEYS = [_new_key(), *settings.FIELD_ENCRYPTION_KEYS]
    with schema_context(tenant_a.schema_name):
        before = type(channel_a)._base_manager.values_list("access_token_encrypted", flat=True).get()
    out = StringIO()

    call_command("rotate_encryption_key", "--dry-run", stdout=out)

    assert "would re-encrypt" in out.getvalue()
    assert "would re-encrypt 0 values" not in out.getvalue()
    with schema_context(tenant_a.schema_name):
        assert type(channel_a)._base_manager.values_list("access_token_encrypted", flat=True).get() == before


def test_a_value_no_key_opens_is_reported_left_alone_and_fails_the_command(channel_a, tenant_a, settings):
    original = list(settings.FIELD_ENCRYPTION_KEYS)
    settings.FIELD_ENCRYPTION_KEYS = [_new_key()]
    _store(channel_a, tenant_a, token="lost", app_secret="")
    with schema_context(tenant_a.schema_name):
        lost = type(channel_a)._base_manager.values_list("access_token_encrypted", flat=True).get()
    settings.FIELD_ENCRYPTION_KEYS = [_new_key(), *original]
    err = StringIO()

    with pytest.raises(CommandError, match="none of the configured keys"):
        call_command("rotate_encryption_key", stdout=StringIO(), stderr=err)

    assert f"{tenant_a.schema_name}." in err.getvalue()
    assert "access_token_encrypted" in err.getvalue()
    with schema_context(tenant_a.schema_name):
        assert type(channel_a)._base_manager.values_list("access_token_encrypted", flat=True).get() == lost


def test_without_a_key_nothing_can_be_encrypted(settings):
    settings.FIELD_ENCRYPTION_KEYS = []
    with pytest.raises(crypto.DecryptionError):
        crypto.encrypt("x")
