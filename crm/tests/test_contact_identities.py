"""Contacts known by phone, business-scoped user id (BSUID), parent BSUID and username: identities kept
unique by the database, found or created without duplicates, merged when they meet, shown read-only."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.db import IntegrityError, transaction
from django_tenants.utils import schema_context

from conftest import login
from core.models import AuditEvent
from crm import services
from crm.models import Contact, ContactIdentity, Note, Task
from crm.services.identities import WhatsAppUser, resolve_whatsapp_contact
from crm.tests.helpers import api_client, issue_key

BSUID = "US.13491208655302741918"
PARENT = "US.ENT.11815799212886844830"
WA_ID = "14155552671"


@pytest.fixture
def in_a(tenant_a):
    with schema_context(tenant_a.schema_name):
        yield


# -- the database's rules --------------------------------------------------------------------------


def test_one_bsuid_cannot_belong_to_two_contacts(in_a):
    first, second = Contact.objects.create(phone="+14155550001"), Contact.objects.create(phone="+14155550002")
    ContactIdentity.objects.create(contact=first, kind="bsuid", value=BSUID, scope="1")
    with pytest.raises(IntegrityError), transaction.atomic():
        ContactIdentity.objects.create(contact=second, kind="bsuid", value=BSUID, scope="2")
    # The same value as another kind is another identity.
    ContactIdentity.objects.create(contact=second, kind="parent_bsuid", value=BSUID)


def test_many_contacts_may_have_no_phone_but_a_phone_stays_unique(in_a):
    Contact.objects.create(phone="", whatsapp_user_id="US.1")
    Contact.objects.create(phone="", whatsapp_user_id="US.2")
    Contact.objects.create(phone="+14155550003")
    with pytest.raises(IntegrityError), transaction.atomic():
        Contact.objects.create(phone="+14155550003")


# -- finding a WhatsApp user's contact -------------------------------------------------------------


def test_a_bsuid_only_user_gets_a_contact_without_a_phone_and_is_found_again(in_a):
    user = WhatsAppUser(bsuid=BSUID, username="@sheena", scope="waba-1")
    with transaction.atomic():
        contact = resolve_whatsapp_contact(user=user)
    assert (contact.phone, contact.username, contact.whatsapp_user_id) == ("", "sheena", BSUID)
    assert contact.identities.get().scope == "waba-1"
    with transaction.atomic():
        assert resolve_whatsapp_contact(user=user).pk == contact.pk
    assert Contact.objects.count() == 1


def test_a_user_with_no_identifier_is_refused(in_a):
    with pytest.raises(ValueError):
        resolve_whatsapp_contact(user=WhatsAppUser(username="someone"))


def test_a_parent_bsuid_finds_the_contact_across_portfolios(in_a):
    first = resolve_whatsapp_contact(user=WhatsAppUser(bsuid="US.1", parent_bsuid=PARENT, scope="a"))
    second = resolve_whatsapp_contact(user=WhatsAppUser(bsuid="US.2", parent_bsuid=PARENT, scope="b"))
    assert first.pk == second.pk
    assert sorted(first.identities.values_list("value", flat=True)) == sorted(["US.1", "US.2", PARENT])


def test_a_phone_revealed_later_goes_onto_the_bsuid_contact(in_a):
    bsuid_only = resolve_whatsapp_contact(user=WhatsAppUser(bsuid=BSUID))
    with_phone = resolve_whatsapp_contact(user=WhatsAppUser(bsuid=BSUID, wa_id=WA_ID, name="Grace"))
    assert with_phone.pk == bsuid_only.pk
    assert (with_phone.phone, with_phone.wa_id, with_phone.name) == ("+" + WA_ID, WA_ID, "Grace")
    assert resolve_whatsapp_contact(user=WhatsAppUser(wa_id=WA_ID)).pk == bsuid_only.pk
    assert Contact.objects.count() == 1


def test_a_bsuid_contact_and_a_phone_contact_of_one_user_merge_into_the_phone_one(in_a, owner_a):
    phone_contact = Contact.objects.create(phone="+" + WA_ID, wa_id=WA_ID, name="Grace")
    bsuid_contact = resolve_whatsapp_contact(user=WhatsAppUser(bsuid=BSUID, username="grace.h"))
    Note.objects.create(contact=bsuid_contact, body="Met at the fair")
    task = Task.objects.create(title="Send the catalogue", contact=bsuid_contact)
    merged = resolve_whatsapp_contact(user=WhatsAppUser(bsuid=BSUID, wa_id=WA_ID))
    assert merged.pk == phone_contact.pk
    assert list(Contact.objects.values_list("pk", flat=True)) == [phone_contact.pk]
    merged.refresh_from_db()
    assert (merged.name, merged.username, merged.whatsapp_user_id) == ("Grace", "grace.h", BSUID)
    assert ContactIdentity.objects.get().contact_id == merged.pk
    assert Note.objects.get().contact_id == merged.pk
    assert Task.objects.get(pk=task.pk).contact_id == merged.pk
    event = AuditEvent.objects.get(action="contact.merged")
    assert event.details == {"kept": merged.pk, "merged": bsuid_contact.pk}
    # Idempotent: the same identifiers again change nothing.
    assert resolve_whatsapp_contact(user=WhatsAppUser(bsuid=BSUID, wa_id=WA_ID)).pk == merged.pk
    assert AuditEvent.objects.filter(action="contact.merged").count() == 1


def test_merging_into_a_contact_without_a_phone_takes_the_discarded_phone_and_identities(in_a):
    keep = Contact.objects.create(phone="", whatsapp_user_id=BSUID)
    ContactIdentity.objects.create(contact=keep, kind="bsuid", value=BSUID)
    discard = Contact.objects.create(phone="+" + WA_ID, wa_id=WA_ID)
    ContactIdentity.objects.create(contact=discard, kind="parent_bsuid", value=PARENT)
    kept = services.merge_contacts(keep=keep, discard=discard)
    assert (kept.phone, kept.wa_id) == ("+" + WA_ID, WA_ID)
    assert set(kept.identities.values_list("value", flat=True)) == {BSUID, PARENT}


def test_existing_user_ids_are_copied_into_identities_by_the_migration(in_a):
    import importlib

    migration = importlib.import_module("crm.migrations.0007_contact_identities")
    first = Contact.objects.create(phone="+14155550011", whatsapp_user_id="US.77")
    Contact.objects.create(phone="+14155550012", whatsapp_user_id="US.77")  # a duplicate: first keeps it
    Contact.objects.create(phone="+14155550013")
    migration.copy_user_ids(apps, None)
    assert list(ContactIdentity.objects.values_list("contact_id", "kind", "value")) == [
        (first.pk, "bsuid", "US.77")
    ]


# -- shown read-only -------------------------------------------------------------------------------


@pytest.fixture
def bsuid_contact(tenant_a):
    with schema_context(tenant_a.schema_name):
        contact = resolve_whatsapp_contact(
            user=WhatsAppUser(bsuid=BSUID, parent_bsuid=PARENT, username="<script>x</script>", scope="42")
        )
        return contact


def test_the_api_shows_username_and_bsuid_read_only(tenant_a, bsuid_contact):
    api = api_client(tenant_a, issue_key(tenant_a, role="owner"))
    body = api.get(f"/api/v1/contacts/{bsuid_contact.pk}/").json()
    assert (body["username"], body["bsuid"], body["phone"]) == ("<script>x</script>", BSUID, "")
    response = api.patch(
        f"/api/v1/contacts/{bsuid_contact.pk}/",
        {"username": "hijack", "bsuid": "US.0", "name": "Renamed"},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    assert (response.json()["username"], response.json()["bsuid"], response.json()["name"]) == (
        "<script>x</script>",
        BSUID,
        "Renamed",
    )


def test_the_api_finds_a_contact_by_username(tenant_a, bsuid_contact):
    api = api_client(tenant_a, issue_key(tenant_a, role="owner"))
    with schema_context(tenant_a.schema_name):
        Contact.objects.create(phone="+14155550021", name="Someone else")
    for query in ("script", "@<script>"):
        found = api.get("/api/v1/contacts/", {"search": query}).json()
        assert [c["id"] for c in found["results"]] == [bsuid_contact.pk], query


def test_another_tenant_does_not_see_the_contact(tenant_b, bsuid_contact):
    api = api_client(tenant_b, issue_key(tenant_b, role="owner"))
    assert api.get(f"/api/v1/contacts/{bsuid_contact.pk}/").status_code == 404
    assert api.get("/api/v1/contacts/", {"search": "script"}).json()["results"] == []


def test_the_contact_page_shows_the_identities_escaped(tenant_a, client_a, owner_a, bsuid_contact):
    page = login(client_a, tenant_a, owner_a).get(f"/contacts/{bsuid_contact.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "@&lt;script&gt;x&lt;/script&gt;" in html
    assert "<script>x</script>" not in html
    assert BSUID in html and PARENT in html


def test_the_contact_list_finds_a_contact_by_username(tenant_a, client_a, owner_a, bsuid_contact):
    page = login(client_a, tenant_a, owner_a).get("/contacts/", {"q": "@<script"})
    assert page.status_code == 200
    assert f"/contacts/{bsuid_contact.pk}/" in page.content.decode()


def test_a_contact_known_by_its_bsuid_alone_can_be_edited_without_a_number(
    tenant_a, client_a, owner_a, bsuid_contact
):
    client = login(client_a, tenant_a, owner_a)
    response = client.post(
        f"/contacts/{bsuid_contact.pk}/edit/",
        {"name": "Renamed", "phone": "", "marketing_consent": "unknown", "email": "", "tags": ""},
    )
    assert response.status_code == 302, response.content
    with schema_context(tenant_a.schema_name):
        bsuid_contact.refresh_from_db()
        assert (bsuid_contact.name, bsuid_contact.phone) == ("Renamed", "")


def test_a_new_contact_still_needs_a_number(tenant_a, client_a, owner_a):
    page = login(client_a, tenant_a, owner_a).post(
        "/contacts/new/", {"name": "x", "marketing_consent": "unknown"}
    )
    assert page.status_code == 200
    with schema_context(tenant_a.schema_name):
        assert not Contact.objects.filter(name="x").exists()
