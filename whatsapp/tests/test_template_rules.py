"""Meta's template rules, checked before a template is submitted: each rule a draft breaks is refused with
its field, a stable code and a message a person can act on; valid templates of every kind pass."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from whatsapp.template_rules import check_draft, components_of, request_of


def valid(**changes: Any) -> dict[str, Any]:
    draft: dict[str, Any] = {
        "name": "order_shipped",
        "language": "en_US",
        "category": "UTILITY",
        "header": {"format": "TEXT", "text": "Order {{1}} shipped", "example": "A-1001"},
        "body": "Hi {{1}}, your order {{2}} is on its way.",
        "body_examples": ["Maria", "A-1001"],
        "footer": "Reply STOP to opt out",
        "buttons": [],
    }
    draft.update(changes)
    return draft


def problems(draft: Any) -> list[tuple[str, str]]:
    return [(p.field, p.code) for p in check_draft(draft)]


def test_a_valid_utility_template_has_no_problems_and_becomes_metas_components():
    draft = valid()

    assert check_draft(draft) == []
    request = request_of(draft)
    assert request["parameter_format"] == "POSITIONAL"
    assert request["components"] == [
        {
            "type": "HEADER",
            "format": "TEXT",
            "text": "Order {{1}} shipped",
            "example": {"header_text": ["A-1001"]},
        },
        {
            "type": "BODY",
            "text": "Hi {{1}}, your order {{2}} is on its way.",
            "example": {"body_text": [["Maria", "A-1001"]]},
        },
        {"type": "FOOTER", "text": "Reply STOP to opt out"},
    ]


def test_named_variables_are_sent_with_named_examples():
    draft = valid(
        header={"format": "NONE"},
        body="Hello {{first_name}}, your code is {{code}} today.",
        body_examples={"first_name": "Maria", "code": "X1"},
        category="MARKETING",
    )

    assert check_draft(draft) == []
    request = request_of(draft)
    assert request["parameter_format"] == "NAMED"
    assert request["components"][0]["example"] == {
        "body_text_named_params": [
            {"param_name": "first_name", "example": "Maria"},
            {"param_name": "code", "example": "X1"},
        ]
    }


@pytest.mark.parametrize(
    ("button", "expected"),
    [
        ({"type": "QUICK_REPLY", "text": "Yes please"}, {"type": "QUICK_REPLY", "text": "Yes please"}),
        (
            {"type": "URL", "text": "Track", "url": "https://example.com/track"},
            {"type": "URL", "text": "Track", "url": "https://example.com/track"},
        ),
        (
            {
                "type": "URL",
                "text": "Track",
                "url": "https://example.com/t/{{1}}",
                "example": "https://example.com/t/A1",
            },
            {
                "type": "URL",
                "text": "Track",
                "url": "https://example.com/t/{{1}}",
                "example": ["https://example.com/t/A1"],
            },
        ),
        (
            {"type": "PHONE_NUMBER", "text": "Call us", "phone_number": "+1 (415) 555-0123"},
            {"type": "PHONE_NUMBER", "text": "Call us", "phone_number": "+14155550123"},
        ),
        ({"type": "COPY_CODE", "example": "SAVE20"}, {"type": "COPY_CODE", "example": "SAVE20"}),
    ],
)
def test_a_valid_template_with_each_kind_of_button_is_accepted(button, expected):
    draft = valid(category="MARKETING", buttons=[button])

    assert check_draft(draft) == []
    assert components_of(draft)[-1] == {"type": "BUTTONS", "buttons": [expected]}


def test_a_media_header_takes_an_example_handle():
    draft = valid(header={"format": "IMAGE", "media": "4::aW1hZ2UvanBlZw==:ARb"})

    assert check_draft(draft) == []
    assert components_of(draft)[0] == {
        "type": "HEADER",
        "format": "IMAGE",
        "example": {"header_handle": ["4::aW1hZ2UvanBlZw==:ARb"]},
    }


def test_an_authentication_template_has_metas_fixed_shape():
    draft = {
        "name": "login_code",
        "language": "en",
        "category": "AUTHENTICATION",
        "add_security_recommendation": True,
        "code_expiration_minutes": 10,
        "otp_button_text": "Copy code",
    }

    assert check_draft(draft) == []
    assert request_of(draft) == {
        "name": "login_code",
        "language": "en",
        "category": "AUTHENTICATION",
        "components": [
            {"type": "BODY", "add_security_recommendation": True},
            {"type": "FOOTER", "code_expiration_minutes": 10},
            {"type": "BUTTONS", "buttons": [{"type": "OTP", "otp_type": "COPY_CODE", "text": "Copy code"}]},
        ],
    }


QUICK = {"type": "QUICK_REPLY", "text": "Yes"}
URL = {"type": "URL", "text": "Open", "url": "https://example.com"}
PHONE = {"type": "PHONE_NUMBER", "text": "Call", "phone_number": "+14155550123"}
CODE = {"type": "COPY_CODE", "example": "SAVE20"}

BROKEN: list[tuple[str, dict[str, Any], tuple[str, str]]] = [
    ("no name", {"name": ""}, ("name", "required")),
    ("capital letters in the name", {"name": "Order_Shipped"}, ("name", "invalid_name")),
    ("a space in the name", {"name": "order shipped"}, ("name", "invalid_name")),
    ("a hyphen in the name", {"name": "order-shipped"}, ("name", "invalid_name")),
    ("a name of 513 characters", {"name": "a" * 513}, ("name", "too_long")),
    ("an unknown language", {"language": "english"}, ("language", "unknown_language")),
    ("an unknown category", {"category": "SERVICE"}, ("category", "unknown_category")),
    ("an unknown header format", {"header": {"format": "AUDIO"}}, ("header.format", "invalid_header_format")),
    ("an empty text header", {"header": {"format": "TEXT", "text": " "}}, ("header.text", "required")),
    (
        "a header of 61 characters",
        {"header": {"format": "TEXT", "text": "h" * 61}},
        ("header.text", "too_long"),
    ),
    (
        "two variables in the header",
        {"header": {"format": "TEXT", "text": "A {{1}} and {{2}}", "example": "x"}},
        ("header.text", "too_many_variables"),
    ),
    (
        "a header variable without an example",
        {"header": {"format": "TEXT", "text": "Order {{1}}", "example": ""}},
        ("header.example", "example_required"),
    ),
    (
        "an image header without an example",
        {"header": {"format": "IMAGE"}},
        ("header.media", "example_required"),
    ),
    (
        "a video header with a plain-http URL",
        {"header": {"format": "VIDEO", "media": "http://example.com/a.mp4"}},
        ("header.media", "invalid_media"),
    ),
    ("no body", {"body": ""}, ("body", "required")),
    ("a body of 1025 characters", {"body": "b" * 1025, "body_examples": []}, ("body", "too_long")),
    (
        "numbered and named variables together",
        {"body": "Hi {{1}}, your {{order}} is here.", "body_examples": ["a", "b"]},
        ("body", "mixed_variable_formats"),
    ),
    (
        "variables not numbered from 1",
        {"body": "Hi {{2}}, your order is {{3}} now.", "body_examples": ["a", "b"]},
        ("body", "variables_not_sequential"),
    ),
    (
        "a skipped number",
        {"body": "Hi {{1}}, your order is {{3}} now.", "body_examples": ["a", "b"]},
        ("body", "variables_not_sequential"),
    ),
    (
        "a body starting with a variable",
        {"body": "{{1}}, your order {{2}} is on its way.", "body_examples": ["a", "b"]},
        ("body", "variable_at_edge"),
    ),
    (
        "a body ending with a variable",
        {"body": "Hi {{1}}, your order is {{2}}", "body_examples": ["a", "b"]},
        ("body", "variable_at_edge"),
    ),
    (
        "adjacent variables",
        {"body": "Hi {{1}} {{2}}, your order is here.", "body_examples": ["a", "b"]},
        ("body", "adjacent_variables"),
    ),
    (
        "a malformed variable",
        {"body": "Hi {{first name}}, your order is here.", "body_examples": []},
        ("body", "invalid_variable"),
    ),
    (
        "unbalanced braces",
        {"body": "Hi {{1}, your order is here.", "body_examples": []},
        ("body", "invalid_variable"),
    ),
    (
        "a missing body example",
        {"body_examples": ["Maria"]},
        ("body_examples", "example_required"),
    ),
    (
        "a missing named example",
        {
            "header": {},
            "body": "Hi {{first_name}}, see {{code}} here.",
            "body_examples": {"first_name": "Maria"},
        },
        ("body_examples", "example_required"),
    ),
    ("a footer of 61 characters", {"footer": "f" * 61}, ("footer", "too_long")),
    ("a variable in the footer", {"footer": "Bye {{1}}"}, ("footer", "variables_not_allowed")),
    (
        "an unknown button type",
        {"buttons": [{"type": "FLOW", "text": "Go"}]},
        ("buttons.0.type", "unknown_button_type"),
    ),
    (
        "a button without text",
        {"buttons": [{"type": "QUICK_REPLY", "text": ""}]},
        ("buttons.0.text", "required"),
    ),
    (
        "a button text of 26 characters",
        {"buttons": [{"type": "QUICK_REPLY", "text": "x" * 26}]},
        ("buttons.0.text", "too_long"),
    ),
    ("eleven quick replies", {"buttons": [QUICK] * 11}, ("buttons", "too_many_buttons")),
    ("three URL buttons", {"buttons": [URL] * 3}, ("buttons", "too_many_buttons")),
    ("two phone buttons", {"buttons": [PHONE] * 2}, ("buttons", "too_many_buttons")),
    ("two copy-code buttons", {"buttons": [CODE] * 2}, ("buttons", "too_many_buttons")),
    ("eleven buttons in all", {"buttons": [QUICK] * 9 + [URL, PHONE]}, ("buttons", "too_many_buttons")),
    ("quick replies split up", {"buttons": [QUICK, URL, QUICK]}, ("buttons", "quick_replies_not_grouped")),
    (
        "a URL button without an address",
        {"buttons": [{"type": "URL", "text": "Open", "url": ""}]},
        ("buttons.0.url", "required"),
    ),
    (
        "a URL that is not a web address",
        {"buttons": [{"type": "URL", "text": "Open", "url": "javascript:alert(1)"}]},
        ("buttons.0.url", "invalid_url"),
    ),
    (
        "a URL variable in the middle",
        {
            "buttons": [
                {
                    "type": "URL",
                    "text": "Open",
                    "url": "https://e.com/{{1}}/x",
                    "example": "https://e.com/a/x",
                }
            ]
        },
        ("buttons.0.url", "invalid_url_variable"),
    ),
    (
        "two URL variables",
        {"buttons": [{"type": "URL", "text": "Open", "url": "https://e.com/{{1}}{{2}}"}]},
        ("buttons.0.url", "invalid_url_variable"),
    ),
    (
        "a URL variable without an example",
        {"buttons": [{"type": "URL", "text": "Open", "url": "https://e.com/{{1}}"}]},
        ("buttons.0.example", "example_required"),
    ),
    (
        "a URL example for another address",
        {
            "buttons": [
                {"type": "URL", "text": "Open", "url": "https://e.com/{{1}}", "example": "https://x.com/a"}
            ]
        },
        ("buttons.0.example", "invalid_example"),
    ),
    (
        "a phone number without a country code",
        {"buttons": [{"type": "PHONE_NUMBER", "text": "Call", "phone_number": "4155550123"}]},
        ("buttons.0.phone_number", "invalid_phone_number"),
    ),
    (
        "a phone number that cannot exist",
        {"buttons": [{"type": "PHONE_NUMBER", "text": "Call", "phone_number": "+1 000"}]},
        ("buttons.0.phone_number", "invalid_phone_number"),
    ),
    (
        "a copy code without an example",
        {"buttons": [{"type": "COPY_CODE", "example": ""}]},
        ("buttons.0.example", "example_required"),
    ),
    (
        "a copy-code example of 16 characters",
        {"buttons": [{"type": "COPY_CODE", "example": "C" * 16}]},
        ("buttons.0.example", "too_long"),
    ),
    ("buttons that are not a list", {"buttons": "QUICK_REPLY"}, ("buttons", "invalid_buttons")),
    ("a button that is not an object", {"buttons": ["Yes"]}, ("buttons.0", "invalid_button")),
]


@pytest.mark.parametrize(
    ("change", "expected"), [(c, e) for _, c, e in BROKEN], ids=[n for n, _, _ in BROKEN]
)
def test_each_broken_rule_is_refused_with_its_field_code_and_message(change, expected):
    draft = valid(**copy.deepcopy(change))

    found = check_draft(draft)

    assert expected in [(p.field, p.code) for p in found]
    message = next(p.message for p in found if (p.field, p.code) == expected)
    assert message and message[-1] in ".)" and len(message) < 200


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"header": {"format": "TEXT", "text": "Hi"}}, ("header", "not_allowed_for_authentication")),
        ({"body": "Your code is {{1}}."}, ("body", "not_allowed_for_authentication")),
        ({"footer": "Thanks"}, ("footer", "not_allowed_for_authentication")),
        (
            {"buttons": [{"type": "QUICK_REPLY", "text": "Yes"}]},
            ("buttons.0", "not_allowed_for_authentication"),
        ),
        ({"buttons": [CODE, CODE]}, ("buttons.1", "not_allowed_for_authentication")),
        ({"code_expiration_minutes": 91}, ("code_expiration_minutes", "invalid_expiration")),
        ({"code_expiration_minutes": "ten"}, ("code_expiration_minutes", "invalid_expiration")),
        ({"otp_button_text": "x" * 26}, ("otp_button_text", "too_long")),
    ],
)
def test_an_authentication_template_refuses_what_meta_writes_itself(change, expected):
    draft = {"name": "login_code", "language": "en", "category": "AUTHENTICATION", **change}

    assert expected in problems(draft)


def test_every_problem_is_reported_at_once():
    draft = valid(name="Bad Name", footer="f" * 61, buttons=[QUICK, URL, QUICK])

    assert {
        ("name", "invalid_name"),
        ("footer", "too_long"),
        ("buttons", "quick_replies_not_grouped"),
    } <= set(problems(draft))


@pytest.mark.parametrize(
    "draft",
    [
        None,
        [],
        "template",
        {"name": 5, "language": None, "category": [], "header": "TEXT", "body": {"text": "x"}, "buttons": {}},
        {"name": "x", "language": "en", "category": "UTILITY", "body": "Hi there", "buttons": [None, 3, []]},
        {"category": "AUTHENTICATION", "buttons": [None], "code_expiration_minutes": {"a": 1}},
    ],
)
def test_wrong_types_are_problems_never_exceptions(draft):
    assert problems(draft)
