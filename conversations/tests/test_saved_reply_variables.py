"""Saved replies with `{{…}}` variables: refused when unknown at save time (settings page and admin),
filled in for the open conversation's contact and the inserting user by /inbox/canned/."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django_tenants.utils import schema_context

from conftest import login, make_agent
from conversations import settings_services
from conversations.models import CannedResponse
from core.errors import ServiceError
from crm import services as crm_services

HTMX = {"HTTP_HX_REQUEST": "true"}
REPLIES = "/settings/inbox/replies/"


def orm(tenant: Any) -> Any:
    return schema_context(tenant.schema_name)


def codes(response: Any) -> list[str]:
    return re.findall(r'class="error" role="alert" data-code="([\w-]+)"', response.content.decode())


@pytest.fixture
def owner_client(client_a, tenant_a, owner_a):
    return login(client_a, tenant_a, owner_a)


@pytest.fixture
def plan_attribute(tenant_a):
    with orm(tenant_a):
        crm_services.save_attribute_definition(key="plan", label="Plan", type="text")


def test_a_misspelled_variable_is_refused_on_save_with_an_error_naming_it(owner_client, tenant_a):
    response = owner_client.post(
        REPLIES, {"shortcut": "hi", "text": "Hi {{contact.firstname}}, how can we help?"}, **HTMX
    )
    assert codes(response) == ["unknown_variable"]
    assert "{{contact.firstname}}" in response.content.decode()
    with orm(tenant_a):
        assert not CannedResponse.objects.exists()


def test_an_attribute_key_that_is_not_defined_is_refused_on_save(owner_client, tenant_a, plan_attribute):
    response = owner_client.post(REPLIES, {"shortcut": "tier", "text": "{{contact.attributes.tier}}"}, **HTMX)
    assert codes(response) == ["unknown_variable"]
    assert "no custom attribute with the key “tier”" in response.content.decode()
    with orm(tenant_a):
        assert not CannedResponse.objects.exists()


@pytest.mark.parametrize("text", ["{{ 7*7 }}", "{{contact.name|upper}}", "{{ contact.__class__ }}"])
def test_template_engine_expressions_are_refused_on_save(owner_client, tenant_a, text):
    response = owner_client.post(REPLIES, {"shortcut": "expr", "text": text}, **HTMX)
    assert codes(response) == ["unknown_variable"]
    with orm(tenant_a):
        assert not CannedResponse.objects.exists()


def test_known_variables_with_or_without_spaces_are_accepted(owner_client, tenant_a, plan_attribute):
    text = "Hi {{ contact.first_name }}, {{agent.name}} here about your {{contact.attributes.plan}} plan."
    response = owner_client.post(REPLIES, {"shortcut": "hi", "text": text}, **HTMX)
    assert codes(response) == []
    with orm(tenant_a):
        assert CannedResponse.objects.get().text == text


def test_the_admin_refuses_an_unknown_variable_too(tenant_a):
    with orm(tenant_a), pytest.raises(ServiceError) as caught:
        settings_services.check_canned_response(
            canned=None, shortcut="x", title="", text="{{contact.attributes.nope}}"
        )
    assert caught.value.code == "unknown_variable"


def test_the_composer_receives_the_reply_filled_for_the_contact_and_the_inserting_agent(
    client_a, tenant_a, conversation_a, plan_attribute
):
    agent = make_agent(tenant_a, email="sam.reed@alpha.test", role="admin")
    with orm(tenant_a):
        agent.user.first_name, agent.user.last_name = "Sam", "Reed"
        agent.user.save()
        contact = conversation_a.contact
        contact.name, contact.attributes = "Sheena Easton", {"plan": "Gold"}
        contact.save()
        settings_services.save_canned_response(
            shortcut="hi",
            title="Greeting",
            text="Hi {{contact.first_name}} ({{ contact.name }}), {{agent.name}} here: "
            "{{contact.attributes.plan}}.",
        )
    login(client_a, tenant_a, agent.user)
    found = client_a.get("/inbox/canned/", {"q": "hi", "conversation": conversation_a.pk}).json()
    assert found["results"] == [
        {"shortcut": "hi", "title": "Greeting", "text": "Hi Sheena (Sheena Easton), Sam Reed here: Gold."}
    ]


def test_agent_name_is_whoever_inserts_the_reply(client_a, tenant_a, owner_a, conversation_a):
    other = make_agent(tenant_a, email="kim@alpha.test", role="admin")
    with orm(tenant_a):
        other.user.first_name, other.user.last_name = "Kim", "Lee"
        other.user.save()
        owner_a.first_name, owner_a.last_name = "Olga", "Owner"
        owner_a.save()
        settings_services.save_canned_response(shortcut="sig", text="— {{agent.name}}")
    query = {"q": "sig", "conversation": conversation_a.pk}
    login(client_a, tenant_a, owner_a)
    assert client_a.get("/inbox/canned/", query).json()["results"][0]["text"] == "— Olga Owner"
    login(client_a, tenant_a, other.user)
    assert client_a.get("/inbox/canned/", query).json()["results"][0]["text"] == "— Kim Lee"


def test_a_contact_without_a_name_or_attributes_gets_empty_values(
    client_a, tenant_a, owner_a, conversation_a, plan_attribute
):
    with orm(tenant_a):
        conversation_a.contact.name = ""
        conversation_a.contact.save()
        settings_services.save_canned_response(
            shortcut="hi", text="Hi {{contact.first_name}}! Plan: {{contact.attributes.plan}}."
        )
    login(client_a, tenant_a, owner_a)
    found = client_a.get("/inbox/canned/", {"q": "hi", "conversation": conversation_a.pk}).json()
    assert found["results"][0]["text"] == "Hi ! Plan: ."


def test_without_a_conversation_the_reply_comes_as_written(client_a, tenant_a, owner_a):
    with orm(tenant_a):
        settings_services.save_canned_response(shortcut="hi", text="Hi {{contact.first_name}}")
    login(client_a, tenant_a, owner_a)
    assert (
        client_a.get("/inbox/canned/", {"q": "hi"}).json()["results"][0]["text"]
        == "Hi {{contact.first_name}}"
    )


def test_another_tenants_conversation_cannot_be_used_to_read_its_contact(
    client_b, tenant_b, owner_b, conversation_a
):
    with orm(tenant_b):
        settings_services.save_canned_response(shortcut="hi", text="Hi {{contact.name}}")
    login(client_b, tenant_b, owner_b)
    response = client_b.get("/inbox/canned/", {"q": "hi", "conversation": conversation_a.pk})
    assert response.status_code == 404
    assert b"Sheena" not in response.content


def test_an_agent_cannot_fill_a_reply_for_a_conversation_they_do_not_see(
    client_a, tenant_a, owner_a, conversation_a, agent_a, other_agent_a
):
    from conversations.models import Conversation

    with orm(tenant_a):
        Conversation.objects.filter(pk=conversation_a.pk).update(assignee=other_agent_a)
        settings_services.save_canned_response(shortcut="hi", text="Hi {{contact.name}}")
    login(client_a, tenant_a, agent_a)
    response = client_a.get("/inbox/canned/", {"q": "hi", "conversation": conversation_a.pk})
    assert response.status_code == 404


def test_signed_out_nobody_reads_saved_replies(client_a, conversation_a):
    response = client_a.get("/inbox/canned/", {"q": "", "conversation": conversation_a.pk})
    assert response.status_code == 302
