"""The inbox's contact side panel: in-place edits through the CRM's services, roles, tenancy, queries."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

from conftest import PASSWORD, login
from conversations import services
from conversations.models import Conversation, InboxEvent
from conversations.tests.conftest import make_conversation
from crm import services as crm_services
from crm.models import Contact, Note, Tag

HX = {"HTTP_HX_REQUEST": "true"}


def url(conversation: Conversation, rest: str = "") -> str:
    return f"/inbox/c/{conversation.pk}/contact/{rest}"


def contact_of(tenant: Any, conversation: Conversation) -> Contact:
    with schema_context(tenant.schema_name):
        return Contact.objects.prefetch_related("tags").get(pk=conversation.contact_id)


def contact_events(tenant: Any, conversation: Conversation) -> int:
    with schema_context(tenant.schema_name):
        return InboxEvent.objects.filter(
            conversation_id=conversation.pk, payload__type="conversation.contact"
        ).count()


@pytest.fixture
def owner_client(client_a: Any, tenant_a: Any, owner_a: Any) -> Any:
    return login(client_a, tenant_a, owner_a)


@pytest.fixture
def roleless_a(tenant_a: Any) -> Any:
    """A user of the tenant without an agent row: the inbox lets them read, the CRM gives them no role."""
    with schema_context(tenant_a.schema_name):
        return get_user_model().objects.create_user(
            username="helper@alpha.test", email="helper@alpha.test", password=PASSWORD
        )


# ---------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------


def test_the_thread_loads_the_panel_after_itself(owner_client, tenant_a):
    conversation = make_conversation(tenant_a, name="Lazy Lena")
    html = owner_client.get(f"/inbox/c/{conversation.pk}/", **HX).content.decode()
    assert f'hx-get="/inbox/c/{conversation.pk}/contact/"' in html
    assert 'id="cp-tags"' not in html


def test_the_panel_shows_details_attributes_tags_notes_deals_and_earlier_conversations(
    owner_client, tenant_a, owner_a
):
    conversation = make_conversation(tenant_a, name="Ada Lovelace")
    with schema_context(tenant_a.schema_name):
        crm_services.save_attribute_definition(key="tier", label="Tier", type="number")
        crm_services.save_attribute_definition(key="vip", label="VIP", type="boolean")
        contact = Contact.objects.get(pk=conversation.contact_id)
        crm_services.update_contact(
            contact=contact,
            email="ada@example.test",
            company=crm_services.save_company(name="Analytical Engines"),
            attributes={"tier": "3"},
        )
        contact.tags.add(Tag.objects.create(name="vip-customer", color="#b91c1c"))
        Tag.objects.create(name="prospect")
        crm_services.add_note(contact=contact, body="Prefers email.", author=owner_a)
        deal = crm_services.create_deal(title="Engine order", contact=contact, value="1200", by=owner_a)
        earlier = Conversation.objects.create(contact=contact, status=Conversation.Status.RESOLVED)
    html = owner_client.get(url(conversation), **HX).content.decode()
    assert "Ada Lovelace" in html and "ada@example.test" in html and "Analytical Engines" in html
    assert "Tier" in html and ">3<" in html and "VIP" in html
    assert "vip-customer" in html and 'aria-label="Remove tag vip-customer"' in html
    assert '<option value="prospect">' in html and '<option value="vip-customer">' not in html
    assert "Prefers email." in html and "Owner" in html
    assert f'href="/deals/{deal.pk}/"' in html and "Engine order" in html and "1200.00 USD" in html
    assert deal.stage.name in html
    assert f'href="/deals/new/?contact={conversation.contact_id}"' in html
    assert f'href="/inbox/c/{earlier.pk}/"' in html


def test_the_deal_form_opened_from_the_panel_is_prefilled_with_the_contact(owner_client, tenant_a):
    conversation = make_conversation(tenant_a, name="Deal Dora")
    html = owner_client.get(f"/deals/new/?contact={conversation.contact_id}").content.decode()
    assert f'name="contact" value="{conversation.contact_id}"' in html


def test_the_panel_costs_the_same_number_of_queries_however_many_notes_deals_and_tags(
    owner_client, tenant_a, owner_a
):
    conversation = make_conversation(tenant_a, name="Busy Bea")

    def grow(start: int, stop: int) -> None:
        with schema_context(tenant_a.schema_name):
            contact = Contact.objects.get(pk=conversation.contact_id)
            for i in range(start, stop):
                contact.tags.add(Tag.objects.create(name=f"tag {i}"))
                Tag.objects.create(name=f"other tag {i}")
                crm_services.add_note(contact=contact, body=f"note {i}", author=owner_a)
                crm_services.create_deal(title=f"deal {i}", contact=contact, owner=owner_a, by=owner_a)
                crm_services.save_attribute_definition(key=f"a{i}", label=f"A{i}", type="text")
                Conversation.objects.create(contact=contact, status=Conversation.Status.RESOLVED)

    def count() -> int:
        with CaptureQueriesContext(db_connection) as queries:
            response = owner_client.get(url(conversation), **HX)
        assert response.status_code == 200
        return len(queries)

    grow(0, 1)
    count()  # the session and caches warm up
    few = count()
    grow(1, 15)
    many = count()
    assert many == few, (few, many)
    # 12 reads, each after django-tenants' SET search_path: a query per row would show above.
    assert few <= 24


# ---------------------------------------------------------------------------------------------------
# Details and attributes, one field at a time
# ---------------------------------------------------------------------------------------------------


def test_renaming_the_contact_in_place_redraws_the_panel_and_the_list_and_head_show_the_new_name(
    owner_client, tenant_a
):
    conversation = make_conversation(tenant_a, name="Old Name")
    form = owner_client.get(url(conversation, "field/name/?edit=1"), **HX).content.decode()
    assert '<label for="cf-input-name">Name</label>' in form
    assert 'value="Old Name"' in form and "autofocus" in form

    response = owner_client.post(url(conversation, "field/name/"), {"name": "  Ada King  "}, **HX)

    assert response.status_code == 200
    assert response["HX-Retarget"] == "#contact-pane" and response["HX-Reswap"] == "innerHTML"
    assert json.loads(response["HX-Trigger"]) == {"inbox:contact-changed": {"conversation": conversation.pk}}
    html = response.content.decode()
    assert "Name saved." in html and "Ada King" in html
    assert contact_of(tenant_a, conversation).name == "Ada King"
    assert "Ada King" in owner_client.get(f"/inbox/c/{conversation.pk}/row/?tab=all", **HX).content.decode()
    assert "Ada King" in owner_client.get(f"/inbox/c/{conversation.pk}/head/", **HX).content.decode()
    assert contact_events(tenant_a, conversation) == 1


def test_a_rename_reaches_the_contacts_active_conversations_not_its_resolved_ones(owner_client, tenant_a):
    conversation = make_conversation(tenant_a, name="Many Threads")
    with schema_context(tenant_a.schema_name):
        other_open = Conversation.objects.create(contact_id=conversation.contact_id)
        resolved = Conversation.objects.create(
            contact_id=conversation.contact_id, status=Conversation.Status.RESOLVED
        )
    owner_client.post(url(conversation, "field/name/"), {"name": "Renamed"}, **HX)
    assert contact_events(tenant_a, conversation) == 1
    assert contact_events(tenant_a, other_open) == 1
    assert contact_events(tenant_a, resolved) == 0


def test_a_bad_email_is_refused_next_to_the_field_and_nothing_is_stored(owner_client, tenant_a):
    conversation = make_conversation(tenant_a, name="Eve Mail")
    response = owner_client.post(url(conversation, "field/email/"), {"email": "not-an-email"}, **HX)
    assert response.status_code == 422
    html = response.content.decode()
    assert 'id="cf-email"' in html and "Enter a valid email address." in html
    assert 'role="alert"' in html and 'aria-invalid="true"' in html and 'value="not-an-email"' in html
    assert 'data-code="invalid"' in html
    assert contact_of(tenant_a, conversation).email == ""
    assert contact_events(tenant_a, conversation) == 0


@pytest.mark.parametrize(
    ("field", "posted", "check"),
    [
        ("email", {"email": "Grace@Example.TEST"}, lambda c: c.email == "grace@example.test"),
        (
            "marketing_consent",
            {"marketing_consent": "opted_out"},
            lambda c: c.marketing_consent == "opted_out",
        ),
        ("blocked", {"blocked": "on"}, lambda c: c.blocked is True),
        ("blocked", {}, lambda c: c.blocked is False),
    ],
)
def test_details_are_edited_in_place(field, posted, check, owner_client, tenant_a):
    conversation = make_conversation(tenant_a, name="Detail Dan")
    response = owner_client.post(url(conversation, f"field/{field}/"), posted, **HX)
    assert response.status_code == 200, response.content.decode()
    assert check(contact_of(tenant_a, conversation))


def test_company_and_owner_are_chosen_from_the_workspaces_own(owner_client, tenant_a, owner_a, agent_a):
    conversation = make_conversation(tenant_a, name="Company Carl")
    with schema_context(tenant_a.schema_name):
        company = crm_services.save_company(name="Acme Tools")
    form = owner_client.get(url(conversation, "field/company/?edit=1"), **HX).content.decode()
    assert "Acme Tools" in form
    assert (
        owner_client.post(url(conversation, "field/company/"), {"company": company.pk}, **HX).status_code
        == 200
    )
    assert (
        owner_client.post(url(conversation, "field/owner/"), {"owner": agent_a.pk}, **HX).status_code == 200
    )
    contact = contact_of(tenant_a, conversation)
    assert contact.company_id == company.pk and contact.owner_id == agent_a.pk
    response = owner_client.post(url(conversation, "field/company/"), {"company": 999999}, **HX)
    assert response.status_code == 422 and "Select a valid choice" in response.content.decode()
    assert contact_of(tenant_a, conversation).company_id == company.pk


@pytest.mark.parametrize(
    ("kind", "choices", "bad", "message", "good", "stored"),
    [
        ("number", None, "lots", "Tier must be a number.", "42", 42),
        ("date", None, "31/12/2026", "Tier must be a date (YYYY-MM-DD).", "2026-12-31", "2026-12-31"),
        ("choice", ["gold", "silver"], "bronze", "Select a valid choice.", "gold", "gold"),
        ("boolean", None, "maybe", "Select a valid choice.", "true", True),
        ("text", None, "x" * 1001, "Tier must be at most 1000 characters.", "Gold", "Gold"),
    ],
)
def test_an_attribute_value_is_checked_against_its_definition(
    kind, choices, bad, message, good, stored, owner_client, tenant_a
):
    conversation = make_conversation(tenant_a, name="Attr Ann")
    with schema_context(tenant_a.schema_name):
        crm_services.save_attribute_definition(key="tier", label="Tier", type=kind, choices=choices)
    response = owner_client.post(url(conversation, "field/attr_tier/"), {"attr_tier": bad}, **HX)
    assert response.status_code == 422
    assert message in response.content.decode()
    assert "tier" not in contact_of(tenant_a, conversation).attributes

    response = owner_client.post(url(conversation, "field/attr_tier/"), {"attr_tier": good}, **HX)
    assert response.status_code == 200
    assert contact_of(tenant_a, conversation).attributes["tier"] == stored
    response = owner_client.post(url(conversation, "field/attr_tier/"), {"attr_tier": ""}, **HX)
    assert "tier" not in contact_of(tenant_a, conversation).attributes


def test_the_service_code_of_a_refused_attribute_is_kept_with_its_message(owner_client, tenant_a):
    conversation = make_conversation(tenant_a, name="Code Cleo")
    with schema_context(tenant_a.schema_name):
        crm_services.save_attribute_definition(key="seats", label="Seats", type="number")
    response = owner_client.post(url(conversation, "field/attr_seats/"), {"attr_seats": "many"}, **HX)
    assert 'data-code="invalid_attribute"' in response.content.decode()


@pytest.mark.parametrize("field", ["phone", "tags", "attr_undefined", "wa_id", "attributes"])
def test_a_field_the_panel_does_not_edit_is_not_found(field, owner_client, tenant_a):
    conversation = make_conversation(tenant_a, name="Fixed Fay")
    assert owner_client.get(url(conversation, f"field/{field}/?edit=1"), **HX).status_code == 404
    assert owner_client.post(url(conversation, f"field/{field}/"), {field: "x"}, **HX).status_code == 404


def test_cancel_shows_the_value_again_with_the_focus_on_it(owner_client, tenant_a):
    conversation = make_conversation(tenant_a, name="Cancel Cathy")
    html = owner_client.get(url(conversation, "field/name/"), **HX).content.decode()
    assert "Cancel Cathy" in html and "autofocus" in html and "<form" not in html


def test_an_edit_changes_only_its_field_even_when_the_contact_changed_meanwhile(tenant_a, owner_a):
    conversation = make_conversation(tenant_a, name="Race Rita")
    with schema_context(tenant_a.schema_name):
        conversation = Conversation.objects.select_related("contact").get(pk=conversation.pk)
        Contact.objects.filter(pk=conversation.contact_id).update(email="rita@example.test")
        services.edit_contact(conversation=conversation, by=owner_a, name="Rita Moreno")
        contact = Contact.objects.get(pk=conversation.contact_id)
    assert (contact.name, contact.email) == ("Rita Moreno", "rita@example.test")


# ---------------------------------------------------------------------------------------------------
# Tags and notes
# ---------------------------------------------------------------------------------------------------


def test_tags_are_added_existing_or_new_and_removed(owner_client, tenant_a):
    conversation = make_conversation(tenant_a, name="Tag Tom")
    with schema_context(tenant_a.schema_name):
        existing = Tag.objects.create(name="VIP")
    response = owner_client.post(url(conversation, "tags/"), {"name": " vip "}, **HX)
    assert response.status_code == 200 and "Tag VIP added." in response.content.decode()
    assert response["HX-Retarget"] == "#contact-pane"
    owner_client.post(url(conversation, "tags/"), {"name": "Wholesale"}, **HX)
    with schema_context(tenant_a.schema_name):
        assert Tag.objects.filter(name__iexact="vip").count() == 1
        new = Tag.objects.get(name="Wholesale")
    assert {t.name for t in contact_of(tenant_a, conversation).tags.all()} == {"VIP", "Wholesale"}

    response = owner_client.post(url(conversation, f"tags/{existing.pk}/remove/"), **HX)
    assert response.status_code == 200 and "Tag VIP removed." in response.content.decode()
    assert [t.pk for t in contact_of(tenant_a, conversation).tags.all()] == [new.pk]
    with schema_context(tenant_a.schema_name):
        assert Tag.objects.filter(pk=existing.pk).exists()  # the tag itself stays
    # Removing a tag the contact no longer has changes nothing; an unknown tag is not found.
    assert owner_client.post(url(conversation, f"tags/{existing.pk}/remove/"), **HX).status_code == 200
    assert owner_client.post(url(conversation, "tags/999999/remove/"), **HX).status_code == 404


@pytest.mark.parametrize(
    ("name", "message"), [("   ", "A tag needs a name."), ("x" * 51, "A tag name has at most 50 characters.")]
)
def test_an_empty_or_overlong_tag_name_is_refused_next_to_the_input(name, message, owner_client, tenant_a):
    conversation = make_conversation(tenant_a, name="Tag Tina")
    with schema_context(tenant_a.schema_name):
        tags_before = Tag.objects.count()
    response = owner_client.post(url(conversation, "tags/"), {"name": name}, **HX)
    assert response.status_code == 422
    html = response.content.decode()
    assert html.lstrip().startswith('<section class="cp-section" id="cp-tags"')
    assert message in html and 'data-code="invalid_name"' in html and 'aria-invalid="true"' in html
    with schema_context(tenant_a.schema_name):
        assert Tag.objects.count() == tags_before
    assert list(contact_of(tenant_a, conversation).tags.all()) == []


def test_a_note_is_added_with_its_author_and_shown_first(owner_client, tenant_a, owner_a):
    conversation = make_conversation(tenant_a, name="Note Nina")
    with schema_context(tenant_a.schema_name):
        crm_services.add_note(
            contact=Contact.objects.get(pk=conversation.contact_id), body="older", author=None
        )
    response = owner_client.post(url(conversation, "notes/"), {"body": "Wants a call on Monday"}, **HX)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Note added." in html and html.index("Wants a call on Monday") < html.index("older")
    with schema_context(tenant_a.schema_name):
        note = Note.objects.filter(contact_id=conversation.contact_id).first()
    assert note is not None and note.body == "Wants a call on Monday" and note.author_id == owner_a.pk


@pytest.mark.parametrize(("body", "code"), [("   ", "required"), ("x" * 10001, "max_length")])
def test_an_empty_or_overlong_note_is_refused_next_to_the_input(body, code, owner_client, tenant_a):
    conversation = make_conversation(tenant_a, name="Note Nick")
    response = owner_client.post(url(conversation, "notes/"), {"body": body}, **HX)
    assert response.status_code == 422
    html = response.content.decode()
    assert html.lstrip().startswith('<section class="cp-section" id="cp-notes"')
    assert f'data-code="{code}"' in html and 'role="alert"' in html
    with schema_context(tenant_a.schema_name):
        assert not Note.objects.filter(contact_id=conversation.contact_id).exists()


# ---------------------------------------------------------------------------------------------------
# Roles, visibility, tenancy
# ---------------------------------------------------------------------------------------------------


def test_an_agent_edits_the_contact_of_a_conversation_they_see(client_a, tenant_a, agent_a):
    conversation = make_conversation(tenant_a, name="Agent Work", assignee=agent_a)
    login(client_a, tenant_a, agent_a)
    assert client_a.post(url(conversation, "field/name/"), {"name": "Agent Renamed"}, **HX).status_code == 200
    assert client_a.post(url(conversation, "tags/"), {"name": "callback"}, **HX).status_code == 200
    assert client_a.post(url(conversation, "notes/"), {"body": "Called back"}, **HX).status_code == 200
    contact = contact_of(tenant_a, conversation)
    assert contact.name == "Agent Renamed" and [t.name for t in contact.tags.all()] == ["callback"]


def test_a_user_without_a_crm_role_reads_the_panel_but_every_change_is_refused(
    client_a, tenant_a, roleless_a
):
    conversation = make_conversation(tenant_a, name="Guarded Gus")  # unassigned: everyone sees it
    with schema_context(tenant_a.schema_name):
        tag = Tag.objects.create(name="keep")
        Contact.objects.get(pk=conversation.contact_id).tags.add(tag)
    login(client_a, tenant_a, roleless_a)
    html = client_a.get(url(conversation), **HX).content.decode()
    assert "Guarded Gus" in html and "Read only" in html
    assert "cf-value" not in html and "Remove tag" not in html and 'id="cp-note-body"' not in html

    refusals = [
        client_a.get(url(conversation, "field/name/?edit=1"), **HX),
        client_a.post(url(conversation, "field/name/"), {"name": "Hacked"}, **HX),
        client_a.post(url(conversation, "tags/"), {"name": "sneaky"}, **HX),
        client_a.post(url(conversation, f"tags/{tag.pk}/remove/"), **HX),
        client_a.post(url(conversation, "notes/"), {"body": "sneaky"}, **HX),
    ]
    for response in refusals:
        assert response.status_code == 403
        html = response.content.decode()
        assert 'data-code="forbidden"' in html and "Your role does not allow changing contacts." in html
    contact = contact_of(tenant_a, conversation)
    assert contact.name == "Guarded Gus" and [t.name for t in contact.tags.all()] == ["keep"]
    with schema_context(tenant_a.schema_name):
        assert not Tag.objects.filter(name="sneaky").exists()
        assert not Note.objects.filter(contact_id=conversation.contact_id).exists()


def test_an_agent_cannot_open_or_change_the_panel_of_a_conversation_they_may_not_see(
    client_a, tenant_a, agent_a, other_agent_a
):
    conversation = make_conversation(tenant_a, name="Not Yours", assignee=other_agent_a)
    login(client_a, tenant_a, agent_a)
    assert client_a.get(url(conversation), **HX).status_code == 404
    assert client_a.get(url(conversation, "field/name/?edit=1"), **HX).status_code == 404
    assert client_a.post(url(conversation, "field/name/"), {"name": "X"}, **HX).status_code == 404
    assert client_a.post(url(conversation, "tags/"), {"name": "x"}, **HX).status_code == 404
    assert client_a.post(url(conversation, "notes/"), {"body": "x"}, **HX).status_code == 404
    assert contact_of(tenant_a, conversation).name == "Not Yours"


def test_the_panel_of_another_tenants_conversation_is_not_found(owner_client, tenant_a, tenant_b, owner_a):
    theirs = make_conversation(tenant_b, name="Beta Secret")
    with schema_context(tenant_b.schema_name):
        tag = Tag.objects.create(name="beta-tag")
        Contact.objects.get(pk=theirs.contact_id).tags.add(tag)
    # Each schema numbers its own rows: alpha may hold the same ids; gone here, only beta's could answer.
    with schema_context(tenant_a.schema_name):
        Conversation.objects.filter(pk=theirs.pk).delete()
        Tag.objects.filter(pk=tag.pk).delete()
    requests = [
        owner_client.get(url(theirs), **HX),
        owner_client.get(url(theirs, "field/name/?edit=1"), **HX),
        owner_client.post(url(theirs, "field/name/"), {"name": "Owned"}, **HX),
        owner_client.post(url(theirs, "tags/"), {"name": "x"}, **HX),
        owner_client.post(url(theirs, f"tags/{tag.pk}/remove/"), **HX),
        owner_client.post(url(theirs, "notes/"), {"body": "x"}, **HX),
    ]
    for response in requests:
        assert response.status_code == 404
        assert b"Beta Secret" not in response.content
    contact = contact_of(tenant_b, theirs)
    assert contact.name == "Beta Secret" and [t.name for t in contact.tags.all()] == ["beta-tag"]
    with schema_context(tenant_b.schema_name):
        assert not Note.objects.filter(contact_id=theirs.contact_id).exists()
