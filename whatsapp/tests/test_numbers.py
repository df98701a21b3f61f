"""Connecting numbers (finding 4 of the security probe: squatting) and who may give a number its own app
secret (finding 1). Meta is the sandbox: it knows which numbers belong to which account and which tokens
may read them."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from django_tenants.utils import schema_context

from conftest import login, make_agent
from conversations.models import Channel
from tenants.models import NumberRoute
from whatsapp.services import ChannelError, connect_channel, update_channel_credentials
from whatsapp.testing import PNID_A, PNID_B, WABA_A, WABA_B


def _nothing_stored(tenant: Any, phone_number_id: str) -> bool:
    with schema_context(tenant.schema_name):
        channel = Channel.objects.filter(phone_number_id=phone_number_id).exists()
    route = NumberRoute.objects.filter(phone_number_id=phone_number_id, tenant=tenant).exists()
    return not channel and not route


def _connect(tenant: Any, phone_number_id: str, waba_id: str, token: str, **options: Any) -> str:
    with pytest.raises(ChannelError) as error:
        connect_channel(
            tenant=tenant, phone_number_id=phone_number_id, waba_id=waba_id, access_token=token, **options
        )
    return error.value.code


# -- the squat -------------------------------------------------------------------------------------------


def test_a_number_of_another_account_is_not_connected(tenant_b, sandbox):
    sandbox.add_number(PNID_A, waba_id=WABA_A)  # any token may read alpha's number...
    sandbox.add_number(PNID_B, waba_id=WABA_B, tokens=["token-beta"])

    # ...but it is not one of beta's account's numbers.
    assert _connect(tenant_b, PNID_A, WABA_B, "token-beta") == "number_not_verified"
    assert _nothing_stored(tenant_b, PNID_A)
    assert not NumberRoute.objects.filter(phone_number_id=PNID_A).exists()


def test_a_number_the_token_cannot_read_is_not_connected(tenant_b, sandbox):
    sandbox.add_number(PNID_A, waba_id=WABA_A, tokens=["token-alpha"])

    assert _connect(tenant_b, PNID_A, WABA_A, "token-beta") == "number_not_verified"
    assert not NumberRoute.objects.filter(phone_number_id=PNID_A).exists()
    assert _nothing_stored(tenant_b, PNID_A)


def test_a_number_meta_does_not_know_is_not_connected(tenant_b, sandbox):
    assert _connect(tenant_b, "999999999999999", WABA_B, "token-beta") == "number_not_verified"
    assert _nothing_stored(tenant_b, "999999999999999")


def test_a_token_meta_refuses_is_reported_as_invalid(tenant_a, sandbox):
    sandbox.add_number(PNID_A, waba_id=WABA_A)

    assert _connect(tenant_a, PNID_A, WABA_A, "expired") == "token_invalid"
    assert _nothing_stored(tenant_a, PNID_A)


def test_when_meta_cannot_be_reached_nothing_is_connected(tenant_a, settings):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    settings.WHATSAPP_GRAPH_URL = f"http://127.0.0.1:{closed_port}/v21.0"

    assert _connect(tenant_a, PNID_A, WABA_A, "token-alpha") == "graph_unavailable"
    assert _nothing_stored(tenant_a, PNID_A)


def test_a_number_meta_confirms_is_routed_with_its_account_and_when_it_was_verified(tenant_a, sandbox):
    sandbox.add_number(PNID_A, waba_id=WABA_A, tokens=["token-alpha"], display_phone="+1 555-078-3881")

    channel = connect_channel(
        tenant=tenant_a, phone_number_id=PNID_A, waba_id=WABA_A, access_token="token-alpha"
    )

    route = NumberRoute.objects.get(phone_number_id=PNID_A)
    assert (route.tenant, route.waba_id) == (tenant_a, WABA_A)
    assert route.verified_at is not None
    assert channel.display_phone == "+1 555-078-3881"  # what Meta says, when the admin typed nothing


def test_a_number_of_another_workspace_is_refused_only_as_taken(channel_a, tenant_b, sandbox):
    # Beta even holds a token Meta lets read it; the platform operator decides, beta learns nothing more.
    sandbox.add_number(PNID_A, waba_id=WABA_A, tokens=["token-alpha", "token-shared"])

    assert _connect(tenant_b, PNID_A, WABA_A, "token-shared") == "number_taken"
    assert NumberRoute.objects.get(phone_number_id=PNID_A).tenant.slug == "alpha"
    assert _nothing_stored(tenant_b, PNID_A)


def test_the_tenant_admin_shows_a_failed_check_on_the_form_and_stores_nothing(
    client_b, tenant_b, owner_b, sandbox
):
    sandbox.add_number(PNID_A, waba_id=WABA_A, tokens=["token-alpha"])
    login(client_b, tenant_b, owner_b)

    response = client_b.post(
        "/admin/conversations/channel/add/",
        {
            "name": "Squat",
            "phone_number_id": PNID_A,
            "waba_id": WABA_A,
            "display_phone": "",
            "throughput_cap": 80,
            "status": "active",
            "access_token": "token-beta",
        },
    )

    assert response.status_code == 200  # the form again, with the error
    assert "Meta does not confirm" in response.content.decode()
    assert not NumberRoute.objects.filter(phone_number_id=PNID_A).exists()
    assert _nothing_stored(tenant_b, PNID_A)


def test_the_tenant_admin_shows_a_conflict_as_that_error_alone(
    client_b, tenant_b, owner_b, channel_a, sandbox
):
    sandbox.add_number(PNID_A, waba_id=WABA_A, tokens=["token-alpha", "token-shared"])
    login(client_b, tenant_b, owner_b)

    response = client_b.post(
        "/admin/conversations/channel/add/",
        {
            "phone_number_id": PNID_A,
            "waba_id": WABA_A,
            "throughput_cap": 80,
            "status": "active",
            "access_token": "token-shared",
        },
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert "connected to another workspace" in page
    assert "Alpha" not in page and "alpha" not in page
    assert NumberRoute.objects.get(phone_number_id=PNID_A).tenant.slug == "alpha"


# -- the number's own app secret -----------------------------------------------------------------------


def _secret_of(phone_number_id: str) -> str:
    return NumberRoute.objects.get(phone_number_id=phone_number_id).app_secret_encrypted


@pytest.mark.parametrize("role", ["admin", "supervisor", "agent"])
def test_only_an_owner_can_set_a_numbers_app_secret(channel_a, tenant_a, role):
    with schema_context(tenant_a.schema_name), pytest.raises(ChannelError) as error:
        update_channel_credentials(channel=channel_a, app_secret="mine-now", by_role=role)
    assert error.value.code == "owner_only"
    assert _secret_of(PNID_A) == ""

    with schema_context(tenant_a.schema_name):
        update_channel_credentials(channel=channel_a, app_secret="the-owners", by_role="owner")
    assert _secret_of(PNID_A) != ""


def test_connecting_a_number_with_an_app_secret_needs_the_owner(tenant_a, sandbox):
    sandbox.add_number(PNID_A, waba_id=WABA_A, tokens=["token-alpha"])

    assert _connect(tenant_a, PNID_A, WABA_A, "token-alpha", app_secret="x", by_role="admin") == "owner_only"
    assert _nothing_stored(tenant_a, PNID_A)


def test_a_number_meta_has_not_confirmed_cannot_get_an_app_secret(channel_a, tenant_a):
    # A route from before the ownership check existed.
    NumberRoute.objects.filter(phone_number_id=PNID_A).update(verified_at=None)

    with schema_context(tenant_a.schema_name), pytest.raises(ChannelError) as error:
        update_channel_credentials(channel=channel_a, app_secret="s", by_role="owner")
    assert error.value.code == "number_not_verified"
    assert _secret_of(PNID_A) == ""


def test_the_tenant_admin_offers_the_app_secret_to_owners_only(client_a, tenant_a, owner_a, channel_a):
    admin = make_agent(tenant_a, email="admin@alpha.test", role="admin")
    url = f"/admin/conversations/channel/{channel_a.pk}/change/"

    login(client_a, tenant_a, owner_a)
    assert 'name="app_secret"' in client_a.get(url).content.decode()

    login(client_a, tenant_a, admin.user)
    assert 'name="app_secret"' not in client_a.get(url).content.decode()
    client_a.post(
        url,
        {
            "name": "Sales",
            "display_phone": "",
            "throughput_cap": 80,
            "status": "active",
            "app_secret": "sneaky",
        },
    )
    assert _secret_of(PNID_A) == ""
    with schema_context(tenant_a.schema_name):
        assert Channel.objects.get(pk=channel_a.pk).name == "Sales"  # the rest was saved


def test_the_first_number_connected_gives_the_workspace_its_phone_country(tenant_b, sandbox):
    """Numbers a business's staff type without a country code are most likely from its own country."""
    from tenants.models import Tenant

    sandbox.add_number(PNID_B, waba_id=WABA_B, display_phone="+351 912 345 678")
    connect_channel(tenant=tenant_b, phone_number_id=PNID_B, waba_id=WABA_B, access_token="token-beta")
    assert Tenant.objects.get(pk=tenant_b.pk).settings["phone_region"] == "PT"
