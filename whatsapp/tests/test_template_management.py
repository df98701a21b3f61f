"""Settings → WhatsApp templates and its API: a template is created on the page, submitted to Meta (the
sandbox) and stored PENDING; Meta's webhooks approve it, rate it and change its category; it is deleted
with a confirmation. Roles, the other tenant, hostile text and Meta's refusals at each boundary."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.urls import reverse
from django_tenants.utils import schema_context

from conftest import login, make_agent
from core.models import AuditEvent
from whatsapp.models import MessageTemplate
from whatsapp.testing import WABA_A, WABA_B, run_jobs

PAGE = "/settings/whatsapp/templates/"
API = "/api/v1/whatsapp/templates/"


def form(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "waba_id": WABA_A,
        "name": "order_shipped",
        "language": "en_US",
        "category": "UTILITY",
        "header_format": "TEXT",
        "header_text": "Order {{1}}",
        "header_example": "A-1001",
        "body": "Hi {{1}}, your order {{2}} is on its way.",
        "body_examples": "Maria\nA-1001",
        "footer": "Thanks for shopping with us",
        "button_0_type": "QUICK_REPLY",
        "button_0_text": "Where is it?",
        "button_1_type": "QUICK_REPLY",
        "button_1_text": "Stop updates",
        "button_2_type": "URL",
        "button_2_text": "Track",
        "button_2_value": "https://shop.example/track/{{1}}",
        "button_2_example": "https://shop.example/track/A-1001",
    }
    data.update(changes)
    return data


def api_draft(**changes: Any) -> dict[str, Any]:
    draft: dict[str, Any] = {
        "waba_id": WABA_A,
        "name": "api_template",
        "language": "en",
        "category": "MARKETING",
        "body": "Hello {{first_name}}, our sale starts {{day}} morning.",
        "body_examples": {"first_name": "Maria", "day": "Monday"},
        "buttons": [{"type": "PHONE_NUMBER", "text": "Call us", "phone_number": "+14155550123"}],
    }
    draft.update(changes)
    return draft


@pytest.fixture
def owner_client(client_a: Any, tenant_a: Any, owner_a: Any, channel_a: Any) -> Any:
    return login(client_a, tenant_a, owner_a)


def as_role(client: Any, tenant: Any, role: str) -> Any:
    return login(client, tenant, make_agent(tenant, email=f"{role}@alpha.test", role=role).user)


def template_a(**filters: Any) -> MessageTemplate:
    with schema_context("alpha"):
        return MessageTemplate.objects.get(**filters)


def deliver_from_sandbox(public_client: Any, sandbox: Any, count: int = 1) -> None:
    """The sandbox's signed account webhooks, posted as Meta would, then processed."""
    for body in sandbox.wait_for_outbox(count):
        response = public_client.post(
            "/webhooks/whatsapp/",
            data=body,
            content_type="application/json",
            headers={"X-Hub-Signature-256": sandbox.sign(body)},
        )
        assert response.status_code == 200, response.content
    run_jobs()


def test_a_template_made_on_the_page_is_submitted_to_meta_and_stored_pending(owner_client, sandbox, tenant_a):
    response = owner_client.post(reverse("whatsapp-template-create"), form())

    assert response.status_code == 302, response.content.decode()[:3000]
    [submitted] = sandbox.state.templates[WABA_A]
    assert (submitted["name"], submitted["status"], submitted["category"]) == (
        "order_shipped",
        "PENDING",
        "UTILITY",
    )
    assert submitted["components"][-1]["buttons"][2] == {
        "type": "URL",
        "text": "Track",
        "url": "https://shop.example/track/{{1}}",
        "example": ["https://shop.example/track/A-1001"],
    }
    stored = template_a(name="order_shipped")
    assert (stored.meta_id, stored.status, stored.language) == (submitted["id"], "PENDING", "en_US")
    assert stored.body_placeholders() == ["1", "2"]
    with schema_context(tenant_a.schema_name):
        assert AuditEvent.objects.filter(
            action="template.created", target_label__contains="order_shipped"
        ).exists()
    page = owner_client.get(PAGE).content.decode()
    assert "order_shipped" in page and "PENDING" in page


def test_metas_approval_webhook_makes_it_approved(owner_client, sandbox, public_client):
    owner_client.post(reverse("whatsapp-template-create"), form())

    sandbox.review_template(WABA_A, "order_shipped", "APPROVED")
    deliver_from_sandbox(public_client, sandbox)

    approved = template_a(name="order_shipped")
    assert (approved.status, approved.status_reason, approved.is_approved) == ("APPROVED", "", True)
    assert "APPROVED" in owner_client.get(PAGE + "?status=APPROVED").content.decode()


def test_a_rejection_shows_metas_reason(owner_client, sandbox, public_client):
    owner_client.post(reverse("whatsapp-template-create"), form())

    sandbox.review_template(WABA_A, "order_shipped", "REJECTED", reason="INVALID_FORMAT")
    deliver_from_sandbox(public_client, sandbox)

    assert (template_a(name="order_shipped").status, template_a(name="order_shipped").status_reason) == (
        "REJECTED",
        "INVALID_FORMAT",
    )
    page = owner_client.get(PAGE + "?status=REJECTED").content.decode()
    assert "INVALID_FORMAT" in page
    assert (
        '<td class="mono">order_shipped</td>'
        not in owner_client.get(PAGE + "?status=APPROVED").content.decode()
    )


def test_quality_and_an_impending_then_completed_category_change_are_shown(
    owner_client, sandbox, public_client
):
    owner_client.post(reverse("whatsapp-template-create"), form())
    sandbox.review_template(WABA_A, "order_shipped", "APPROVED")
    sandbox.rate_template(WABA_A, "order_shipped", "YELLOW")
    sandbox.recategorise_template(WABA_A, "order_shipped", "MARKETING", impending=True, at=1893456000)
    deliver_from_sandbox(public_client, sandbox, count=3)

    announced = template_a(name="order_shipped")
    assert (announced.quality_score, announced.category, announced.pending_category) == (
        "YELLOW",
        "UTILITY",
        "MARKETING",
    )
    assert announced.category_change_at is not None and announced.category_change_at.year == 2030
    page = owner_client.get(PAGE).content.decode()
    assert "Changes to MARKETING on" in page and "2030" in page and "YELLOW" in page

    sandbox.recategorise_template(WABA_A, "order_shipped", "MARKETING")
    deliver_from_sandbox(public_client, sandbox)

    changed = template_a(name="order_shipped")
    assert (
        changed.category,
        changed.previous_category,
        changed.pending_category,
        changed.category_change_at,
    ) == (
        "MARKETING",
        "UTILITY",
        "",
        None,
    )
    page = owner_client.get(PAGE).content.decode()
    assert "Changes to" not in page and "(was UTILITY)" in page


def test_a_template_webhook_for_an_account_not_connected_here_changes_nothing(
    owner_client, sandbox, public_client, tenant_b, channel_b
):
    owner_client.post(reverse("whatsapp-template-create"), form())
    # Beta's account has a template of the same name; Meta approves that one.
    sandbox.set_templates(WABA_B, [{"id": "777000000000001", "name": "order_shipped", "language": "en_US"}])
    sandbox.review_template(WABA_B, "order_shipped", "APPROVED")
    deliver_from_sandbox(public_client, sandbox)

    assert template_a(name="order_shipped").status == "PENDING"


def test_each_rule_the_form_breaks_is_shown_next_to_its_field_and_nothing_is_submitted(owner_client, sandbox):
    response = owner_client.post(
        reverse("whatsapp-template-create"),
        form(
            name="Order Shipped",
            body="{{1}} your order is here",
            body_examples="",
            footer="x" * 61,
            button_1_type="URL",
            button_1_text="Open",
            button_1_value="https://shop.example",
            button_2_type="QUICK_REPLY",
            button_2_text="y" * 26,
            button_2_value="",
            button_3_type="PHONE_NUMBER",
            button_3_text="Call",
            button_3_value="12345",
        ),
    )

    assert response.status_code == 400
    html = response.content.decode()

    def block(marker: str) -> str:
        start = html.index(marker)
        return html[start : start + 1500]

    assert "Use only lowercase letters" in block('data-field="name"')
    assert "cannot start or end with a variable" in block('data-field="body"')
    assert "longer than 60 characters" in block('data-field="footer"')
    assert "Put the quick-reply buttons together" in block('data-field="buttons"')
    assert "at most 25 characters" in block('data-button="3"')
    assert "international format" in block('data-button="4"')
    assert WABA_A not in sandbox.state.templates
    with schema_context("alpha"):
        assert not MessageTemplate.objects.exists()


def test_metas_refusal_is_said_clearly_and_nothing_is_stored(owner_client, sandbox):
    sandbox.fail(100, phone_number_id=WABA_A, title="Template body has invalid words")

    response = owner_client.post(reverse("whatsapp-template-create"), form())

    assert response.status_code == 400
    assert "Meta refused to create the template: Template body has invalid words" in response.content.decode()
    with schema_context("alpha"):
        assert not MessageTemplate.objects.exists()
        assert not AuditEvent.objects.filter(action="template.created").exists()


def test_meta_out_of_reach_is_said_clearly_over_the_api_and_nothing_is_stored(owner_client, sandbox):
    sandbox.fail(131000, phone_number_id=WABA_A, http_status=500)

    response = owner_client.post(API, api_draft(), content_type="application/json")

    assert response.status_code == 502
    assert response.json()["error"]["code"] == "graph_unavailable"
    with schema_context("alpha"):
        assert not MessageTemplate.objects.exists()


def test_a_name_already_used_in_that_language_is_refused(owner_client, sandbox):
    assert owner_client.post(reverse("whatsapp-template-create"), form()).status_code == 302

    response = owner_client.post(
        API, api_draft(name="order_shipped", language="en_US"), content_type="application/json"
    )

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "template_exists"


def test_the_api_creates_a_named_template_and_refuses_a_broken_one_with_every_problem(owner_client, sandbox):
    created = owner_client.post(API, api_draft(), content_type="application/json")

    assert created.status_code == 201, created.content
    assert (created.json()["status"], created.json()["parameter_format"]) == ("PENDING", "NAMED")
    [submitted] = sandbox.state.templates[WABA_A]
    assert submitted["parameter_format"] == "NAMED"

    broken = owner_client.post(
        API,
        api_draft(name="bad name", footer="{{1}}", buttons=[{"type": "URL", "text": "Go", "url": "ftp://x"}]),
        content_type="application/json",
    )

    assert broken.status_code == 400
    error = broken.json()["error"]
    assert error["code"] == "invalid_template"
    assert {(p["field"], p["code"]) for p in error["details"]["problems"]} == {
        ("name", "invalid_name"),
        ("footer", "variables_not_allowed"),
        ("buttons.0.url", "invalid_url"),
    }
    assert all(p["message"] for p in error["details"]["problems"])
    assert len(sandbox.state.templates[WABA_A]) == 1


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"waba_id": WABA_A, "name": ["x"], "buttons": {"a": 1}, "header": 7},
        {"waba_id": WABA_A, "body": "Hi {{1}} there", "body_examples": "x", "code_expiration_minutes": []},
    ],
)
def test_the_api_answers_a_malformed_draft_400_never_500(owner_client, sandbox, body):
    response = owner_client.post(API, json.dumps(body), content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] in ("invalid_template", "validation_error")


def test_an_account_of_no_number_here_is_not_found(owner_client, sandbox, channel_b):
    response = owner_client.post(API, api_draft(waba_id=WABA_B), content_type="application/json")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_account"
    assert WABA_B not in sandbox.state.templates


def test_delete_needs_the_name_typed_then_removes_it_at_meta_and_here(owner_client, sandbox, tenant_a):
    owner_client.post(reverse("whatsapp-template-create"), form())
    template = template_a(name="order_shipped")
    url = reverse("whatsapp-template-delete", args=[template.pk])

    owner_client.post(url, {"confirm": "something_else"})
    assert len(sandbox.state.templates[WABA_A]) == 1
    assert template_a(pk=template.pk)

    response = owner_client.post(url, {"confirm": "order_shipped"})

    assert response.status_code == 302
    assert sandbox.state.templates[WABA_A] == []
    with schema_context(tenant_a.schema_name):
        assert not MessageTemplate.objects.filter(pk=template.pk).exists()
        assert AuditEvent.objects.filter(action="template.deleted").exists()


def test_the_api_deletes_a_template(owner_client, sandbox):
    created = owner_client.post(API, api_draft(), content_type="application/json").json()

    response = owner_client.delete(f"{API}{created['id']}/")

    assert response.status_code == 204
    assert sandbox.state.templates[WABA_A] == []
    with schema_context("alpha"):
        assert not MessageTemplate.objects.exists()


def test_a_refused_deletion_keeps_the_template_and_one_meta_forgot_is_removed(owner_client, sandbox):
    created = owner_client.post(API, api_draft(), content_type="application/json").json()
    # The account's token no longer works: a clear 502, and the template stays.
    sandbox.fail(190, phone_number_id=WABA_A, http_status=401)

    response = owner_client.delete(f"{API}{created['id']}/")

    assert response.status_code == 502
    assert response.json()["error"]["code"] == "graph_auth"
    with schema_context("alpha"):
        assert MessageTemplate.objects.filter(pk=created["id"]).exists()

    sandbox.set_templates(WABA_A, [])  # deleted in Meta's own tools meanwhile
    assert owner_client.delete(f"{API}{created['id']}/").status_code == 204
    with schema_context("alpha"):
        assert not MessageTemplate.objects.exists()


def test_sync_now_reads_the_accounts_templates(owner_client, sandbox):
    sandbox.set_templates(
        WABA_A,
        [
            {
                "id": "900000000000009",
                "name": "welcome",
                "language": "en",
                "status": "APPROVED",
                "category": "MARKETING",
            }
        ],
    )

    response = owner_client.post(reverse("whatsapp-templates-sync"), follow=True)

    assert "1 templates read from Meta" in response.content.decode()
    assert template_a(name="welcome").status == "APPROVED"


@pytest.mark.parametrize("role", ["agent", "supervisor"])
def test_agents_and_supervisors_see_the_list_but_cannot_change_it(
    client_a, tenant_a, channel_a, sandbox, role
):
    with schema_context(tenant_a.schema_name):
        template = MessageTemplate.objects.create(waba_id=WABA_A, meta_id="1", name="welcome", language="en")
    client = as_role(client_a, tenant_a, role)

    page = client.get(PAGE)
    assert page.status_code == 200
    assert "welcome" in page.content.decode() and "New template" not in page.content.decode()
    assert "Delete" not in page.content.decode()
    assert client.post(reverse("whatsapp-template-create"), form()).status_code == 403
    assert (
        client.post(
            reverse("whatsapp-template-delete", args=[template.pk]), {"confirm": "welcome"}
        ).status_code
        == 403
    )
    assert client.post(reverse("whatsapp-templates-sync")).status_code == 403
    assert client.post(API, api_draft(), content_type="application/json").status_code == 403
    assert client.delete(f"{API}{template.pk}/").status_code == 403
    assert client.get(f"{API}{template.pk}/").status_code == 200
    assert WABA_A not in sandbox.state.templates
    assert template_a(pk=template.pk)


def test_an_admin_manages_templates(client_a, tenant_a, channel_a, sandbox):
    client = as_role(client_a, tenant_a, "admin")

    assert "New template" in client.get(PAGE).content.decode()
    assert client.post(reverse("whatsapp-template-create"), form()).status_code == 302


def test_the_page_needs_a_member(client_a, outsider, channel_a):
    assert client_a.get(PAGE).status_code == 302  # to the sign-in page
    with schema_context("public"):  # the outsider is a platform user: their row lives in public
        client_a.force_login(outsider)
    assert client_a.get(PAGE).status_code in (302, 403)


def test_another_tenants_template_is_not_found(owner_client, sandbox, client_b, tenant_b, owner_b, channel_b):
    owner_client.post(reverse("whatsapp-template-create"), form())
    alpha_template = template_a(name="order_shipped")
    beta = login(client_b, tenant_b, owner_b)

    assert (
        beta.post(
            reverse("whatsapp-template-delete", args=[alpha_template.pk]), {"confirm": "order_shipped"}
        ).status_code
        == 404
    )
    assert beta.delete(f"{API}{alpha_template.pk}/").status_code == 404
    assert beta.get(f"{API}{alpha_template.pk}/").status_code == 404
    assert '<td class="mono">order_shipped</td>' not in beta.get(PAGE).content.decode()
    # Beta cannot submit to alpha's account either.
    response = beta.post(API, api_draft(), content_type="application/json")
    assert response.status_code == 404
    assert len(sandbox.state.templates[WABA_A]) == 1
    assert template_a(pk=alpha_template.pk)


def test_hostile_text_is_shown_escaped(owner_client, tenant_a, sandbox):
    hostile = "<script>alert(1)</script>"
    with schema_context(tenant_a.schema_name):
        MessageTemplate.objects.create(
            waba_id=WABA_A,
            meta_id="2",
            name=hostile,
            language="en",
            category=hostile[:30],
            status="REJECTED",
            status_reason='<img src=x onerror="alert(2)">',
            pending_category="<b>x</b>",
        )

    page = owner_client.get(PAGE).content.decode()
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x" not in page and "&lt;img src=x" in page
    assert "<b>x</b>" not in page

    again = owner_client.post(reverse("whatsapp-template-create"), form(name=hostile, body=hostile))
    assert again.status_code == 400
    assert "<script>alert(1)" not in again.content.decode()


def test_in_make_run_the_sandbox_approves_a_created_template_by_itself(owner_client, sandbox, public_client):
    sandbox.template_review_delay = 0.0
    try:
        owner_client.post(reverse("whatsapp-template-create"), form())
        deliver_from_sandbox(public_client, sandbox)
    finally:
        sandbox.template_review_delay = None

    assert template_a(name="order_shipped").status == "APPROVED"


def test_the_sandbox_control_endpoints_send_the_template_webhooks(owner_client, sandbox, public_client):
    import httpx

    owner_client.post(reverse("whatsapp-template-create"), form())
    for action, data in (
        ("template-review", {"event": "PAUSED", "reason": "Low quality"}),
        ("template-quality", {"quality": "RED"}),
        ("template-category", {"category": "MARKETING", "impending": True}),
    ):
        response = httpx.post(
            f"{sandbox.base}/_sandbox/{action}", json={"waba_id": WABA_A, "template": "order_shipped", **data}
        )
        assert response.status_code == 200, response.text
    assert (
        httpx.post(
            f"{sandbox.base}/_sandbox/template-quality",
            json={"waba_id": WABA_A, "template": "nope", "quality": "RED"},
        ).status_code
        == 404
    )
    deliver_from_sandbox(public_client, sandbox, count=3)

    paused = template_a(name="order_shipped")
    assert (paused.status, paused.status_reason, paused.quality_score, paused.pending_category) == (
        "PAUSED",
        "Low quality",
        "RED",
        "MARKETING",
    )


@pytest.mark.parametrize(
    "value",
    [
        {"correct_category": ["MARKETING"], "category_update_timestamp": "soon", "new_category": {"x": 1}},
        {"correct_category": "MARKETING", "category_update_timestamp": float("nan")},
        {"correct_category": "MARKETING", "category_update_timestamp": 10**30},
        {"previous_category": None, "new_category": 7},
        {"event": ["APPROVED"], "other_info": "x", "new_quality_score": {"score": "RED"}},
    ],
)
def test_template_webhooks_of_the_wrong_shape_never_fail(owner_client, sandbox, public_client, value):
    from tenants.models import WebhookEvent
    from whatsapp.testing import post_webhook
    from whatsapp.tests.test_account_webhooks import account_event

    owner_client.post(reverse("whatsapp-template-create"), form())
    template = template_a(name="order_shipped")
    body = account_event(
        WABA_A,
        "template_category_update",
        {"message_template_id": int(template.meta_id), **value},
    )
    body_text = json.dumps(body, allow_nan=True).replace("NaN", "1e999")
    response = post_webhook(public_client, body_text.encode())
    if response.status_code == 200:
        run_jobs()
        assert WebhookEvent.objects.get().status == "processed"
    else:
        assert response.status_code == 400
    assert template_a(pk=template.pk).name == "order_shipped"
