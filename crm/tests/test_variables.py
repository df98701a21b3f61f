"""The `{{…}}` variable syntax (crm/variables.py): parsing, checking and rendering, without a database
(the attribute keys are passed in; only `attribute_keys()` reads them)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from core.errors import ServiceError
from crm import variables

KEYS = {"plan", "seats", "vip", "renews_on"}


def contact(name: str = "", **attributes: Any) -> Any:
    return SimpleNamespace(name=name, attributes=attributes)


def agent(first: str = "", last: str = "", email: str = "agent@alpha.test") -> Any:
    return SimpleNamespace(get_full_name=lambda: f"{first} {last}".strip(), email=email)


def test_it_renders_every_variable_for_a_contact_with_a_name_and_attributes():
    text = (
        "Hi {{contact.first_name}} ({{contact.name}}), {{agent.name}} here: "
        "your {{contact.attributes.plan}} plan."
    )
    rendered = variables.render(
        text, contact=contact("Ana María López", plan="Gold"), agent=agent("Sam", "Reed")
    )
    assert rendered == "Hi Ana (Ana María López), Sam Reed here: your Gold plan."


def test_a_contact_without_a_name_or_attributes_renders_empty_values_for_the_writer_to_see():
    rendered = variables.render(
        "Hi {{contact.first_name}}! Plan: {{contact.attributes.plan}}.", contact=contact(""), agent=None
    )
    assert rendered == "Hi ! Plan: ."


def test_attribute_values_render_as_the_contact_pages_show_them():
    rendered = variables.render(
        "{{contact.attributes.seats}} {{contact.attributes.vip}} {{contact.attributes.renews_on}}",
        contact=contact("A", seats=12, vip=True, renews_on="2026-01-31"),
    )
    assert rendered == "12 Yes 2026-01-31"


def test_agent_name_is_the_inserting_users_full_name_never_their_email():
    assert variables.render("{{agent.name}}", contact=contact("A"), agent=agent("Kim", "Lee")) == "Kim Lee"
    assert variables.render("[{{agent.name}}]", contact=contact("A"), agent=agent()) == "[]"


def test_spaces_inside_the_braces_are_allowed():
    text = "Hi {{ contact.first_name }} and {{contact.name }} and {{  contact.attributes.plan}}"
    variables.check(text, keys=KEYS)
    assert variables.render(text, contact=contact("Bo Diddley", plan="Pro")) == "Hi Bo and Bo Diddley and Pro"


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("Hi {{contact.firstname}}", "{{contact.firstname}}"),
        ("Hi {{ agent.email }}", "{{ agent.email }}"),
        ("Plan {{contact.attributes.tier}}", "{{contact.attributes.tier}}"),
        ("{{ 7*7 }}", "{{ 7*7 }}"),
        ("{{contact.name|upper}}", "{{contact.name|upper}}"),
        ("{{contact.__class__}}", "{{contact.__class__}}"),
        ("{{}}", "{{}}"),
    ],
)
def test_an_unknown_variable_is_refused_naming_it(text, named):
    with pytest.raises(ServiceError) as caught:
        variables.check(text, keys=KEYS)
    assert caught.value.code == "unknown_variable"
    assert caught.value.field == "text"
    assert named in caught.value.message


def test_an_undefined_attribute_key_is_named_as_such():
    with pytest.raises(ServiceError) as caught:
        variables.check("{{contact.attributes.tier}} {{contact.nope}}", keys=KEYS)
    assert "no custom attribute with the key “tier”" in caught.value.message
    assert "(and 1 more)" in caught.value.message


def test_nothing_is_ever_evaluated():
    # Django's template syntax is not ours: tags and expressions stay exactly as written.
    text = "{% debug %}{% load static %} {{ 7*7 }} {{contact.name.upper}} { single } {{ {{contact.name}} }}"
    rendered = variables.render(text, contact=contact("Eve"), agent=agent("Mal", "Lory"))
    assert rendered == "{% debug %}{% load static %} {{ 7*7 }} {{contact.name.upper}} { single } {{ Eve }}"


def test_tag_syntax_is_not_a_variable_so_checking_leaves_it_to_the_writer():
    variables.check("{% debug %} 50% off {a}", keys=KEYS)  # no placeholders: nothing to refuse


def test_values_are_not_escaped_they_are_plain_whatsapp_text():
    rendered = variables.render("{{contact.name}}", contact=contact('<b>Tom & Jerry</b> "x"'))
    assert rendered == '<b>Tom & Jerry</b> "x"'


def test_a_variable_whose_attribute_was_deleted_since_renders_empty_rather_than_failing():
    assert variables.render("[{{contact.attributes.gone}}]", contact=contact("A")) == "[]"


def test_parse_lists_the_placeholders_in_order_with_repeats():
    found = variables.parse("{{contact.name}} {{ agent.name }} {{contact.name}}")
    assert [v.name for v in found] == ["contact.name", "agent.name", "contact.name"]
    assert found[1].raw == "{{ agent.name }}"
