"""CSAT: a 1-5 rating list on resolve, once per resolution, inside the window, never to opted-out or
blocked contacts; the answer is stored without reopening the conversation; reports and the API."""

from __future__ import annotations

import datetime as dt
import itertools

from django.db import transaction
from django.utils import timezone
from django_tenants.utils import schema_context

from conftest import login, make_agent
from conversations.models import Conversation, CsatResponse, CsatSettings, Message
from conversations.services import set_conversation_status
from conversations.services.csat import send_survey
from conversations.services.inbound import InboundDraft, store_inbound_messages
from crm.models import Contact, Team

_wamids = itertools.count(1)


def _enable(tenant, **fields):
    with schema_context(tenant.schema_name):
        settings = CsatSettings.load()
        settings.enabled = True
        for name, value in fields.items():
            setattr(settings, name, value)
        settings.save()


def _surveys(conversation):
    return Message.objects.filter(
        conversation=conversation, direction="out", type=Message.Type.INTERACTIVE
    ).order_by("id")


def _resolve(conversation, by, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        set_conversation_status(conversation=conversation, status="resolved", by=by)


def _inbound(conversation, *, type="text", text="", payload=None):
    contact = Contact.objects.get(pk=conversation.contact_id)
    contact.last_inbound_at = timezone.now()
    contact.save(update_fields=["last_inbound_at"])
    with transaction.atomic():
        Contact.objects.select_for_update().get(pk=contact.pk)
        return store_inbound_messages(
            drafts=[
                InboundDraft(
                    contact=contact,
                    channel=conversation.channel,
                    wamid=f"wamid.csat.{next(_wamids)}",
                    type=type,
                    text=text,
                    payload=payload or {"type": type},
                    preview=text or "reply",
                    timestamp=timezone.now(),
                )
            ]
        )[0]


def _rating(conversation, score):
    reply = {"id": f"csat:{conversation.pk}:{score}", "title": f"{score}"}
    payload = {"type": "interactive", "interactive": {"type": "list_reply", "list_reply": reply}}
    return _inbound(conversation, type="interactive", text=str(score), payload=payload)


def test_resolving_sends_one_rating_list_of_five_through_the_reply_path(
    tenant_a, conversation_a, owner_a, django_capture_on_commit_callbacks
):
    _enable(tenant_a, question="How did we do? <b>honest</b>")
    with schema_context(tenant_a.schema_name):
        _resolve(conversation_a, owner_a, django_capture_on_commit_callbacks)
        [survey] = _surveys(conversation_a)
        interactive = survey.payload["interactive"]
        assert interactive["type"] == "list"
        rows = interactive["action"]["sections"][0]["rows"]
        assert [r["id"] for r in rows] == [f"csat:{conversation_a.pk}:{n}" for n in range(1, 6)]
        assert survey.idempotency_key.startswith(f"csat:{conversation_a.pk}:")
        assert survey.sender_id is None
        response = CsatResponse.objects.get(conversation=conversation_a)
        assert response.message == survey and response.score is None
        # The same resolution never asks twice, however often the survey is attempted.
        assert send_survey(conversation_id=conversation_a.pk) is None
        assert _surveys(conversation_a).count() == 1
        conversation_a.refresh_from_db()
        assert conversation_a.status == "resolved"


def test_a_new_resolution_asks_again_but_the_same_one_never_does(
    tenant_a, conversation_a, owner_a, django_capture_on_commit_callbacks
):
    _enable(tenant_a)
    with schema_context(tenant_a.schema_name):
        _resolve(conversation_a, owner_a, django_capture_on_commit_callbacks)
        set_conversation_status(conversation=conversation_a, status="open", by=owner_a)
        conversation_a.resolved_at = None
        _resolve(conversation_a, owner_a, django_capture_on_commit_callbacks)
        assert _surveys(conversation_a).count() == 2
        assert CsatResponse.objects.filter(conversation=conversation_a).count() == 2


def test_no_survey_when_disabled_outside_the_window_opted_out_or_blocked(
    tenant_a, conversation_a, owner_a, django_capture_on_commit_callbacks
):
    with schema_context(tenant_a.schema_name):
        _resolve(conversation_a, owner_a, django_capture_on_commit_callbacks)  # disabled by default
        assert not _surveys(conversation_a).exists()
    _enable(tenant_a)
    with schema_context(tenant_a.schema_name):
        contact = conversation_a.contact
        cases = [
            {"last_inbound_at": timezone.now() - dt.timedelta(hours=25)},
            {"marketing_consent": Contact.MarketingConsent.OPTED_OUT},
            {"blocked": True},
        ]
        for fields in cases:
            Contact.objects.filter(pk=contact.pk).update(
                last_inbound_at=timezone.now(),
                marketing_consent=Contact.MarketingConsent.UNKNOWN,
                blocked=False,
            )
            Contact.objects.filter(pk=contact.pk).update(**fields)
            set_conversation_status(conversation=conversation_a, status="open", by=owner_a)
            _resolve(conversation_a, owner_a, django_capture_on_commit_callbacks)
            assert not _surveys(conversation_a).exists(), fields
            assert not CsatResponse.objects.exists(), fields
            conversation_a.refresh_from_db()
            assert conversation_a.status == "resolved"


def test_the_rating_is_stored_for_the_agent_and_team_and_does_not_reopen(
    tenant_a, conversation_a, owner_a, agent_a, django_capture_on_commit_callbacks
):
    _enable(tenant_a, thanks_text="Thanks a lot!")
    with schema_context(tenant_a.schema_name):
        team = Team.objects.create(name="Support")
        Conversation.objects.filter(pk=conversation_a.pk).update(assignee=agent_a, team=team)
        conversation_a.refresh_from_db()
        _resolve(conversation_a, owner_a, django_capture_on_commit_callbacks)
        answer = _rating(conversation_a, 4)
        conversation_a.refresh_from_db()
        assert conversation_a.status == "resolved"
        response = CsatResponse.objects.get(conversation=conversation_a)
        assert (response.score, response.agent_id, response.team_id) == (4, agent_a.pk, team.pk)
        assert answer.conversation_id == conversation_a.pk
        thanks = Message.objects.filter(conversation=conversation_a, direction="out", type="text")
        assert [m.text for m in thanks] == ["Thanks a lot!"]
        # A later message is a new request: it reopens as usual.
        _inbound(conversation_a, text="One more question")
        conversation_a.refresh_from_db()
        assert conversation_a.status == "open"


def test_the_comment_is_the_next_message_within_the_minutes_and_is_thanked_once(
    tenant_a, conversation_a, owner_a, django_capture_on_commit_callbacks
):
    _enable(tenant_a, ask_comment=True, comment_prompt="Tell us more?", thanks_text="Thanks!")
    with schema_context(tenant_a.schema_name):
        _resolve(conversation_a, owner_a, django_capture_on_commit_callbacks)
        _rating(conversation_a, 2)
        _inbound(conversation_a, text="<script>alert(1)</script> slow answers")
        conversation_a.refresh_from_db()
        assert conversation_a.status == "resolved"
        response = CsatResponse.objects.get(conversation=conversation_a)
        assert response.score == 2
        assert response.comment == "<script>alert(1)</script> slow answers"
        texts = list(
            Message.objects.filter(conversation=conversation_a, direction="out", type="text").values_list(
                "text", flat=True
            )
        )
        assert texts == ["Tell us more?", "Thanks!"]
        # The next one is not a comment: it reopens, and nobody is thanked again.
        _inbound(conversation_a, text="hello again")
        conversation_a.refresh_from_db()
        assert conversation_a.status == "open"
        assert (
            Message.objects.filter(conversation=conversation_a, direction="out", text="Thanks!").count() == 1
        )


def test_a_rating_naming_another_conversation_is_ignored(
    tenant_a, conversation_a, owner_a, django_capture_on_commit_callbacks
):
    _enable(tenant_a)
    with schema_context(tenant_a.schema_name):
        _resolve(conversation_a, owner_a, django_capture_on_commit_callbacks)
        reply = {"id": f"csat:{conversation_a.pk + 999}:5", "title": "5"}
        payload = {"type": "interactive", "interactive": {"type": "list_reply", "list_reply": reply}}
        _inbound(conversation_a, type="interactive", text="5", payload=payload)
        assert CsatResponse.objects.get(conversation=conversation_a).score is None
        conversation_a.refresh_from_db()
        assert conversation_a.status == "open"


def test_reports_show_csat_per_agent_and_team_escaped(
    tenant_a, conversation_a, owner_a, client_a, django_capture_on_commit_callbacks
):
    hostile = make_agent(tenant_a, email="evil@alpha.test", role="agent").user
    with schema_context(tenant_a.schema_name):
        hostile.first_name = "<img src=x onerror=alert(1)>"
        hostile.save()
        team = Team.objects.create(name="<b>Team</b>")
        for score in (5, 4, 2):
            CsatResponse.objects.create(
                conversation=conversation_a,
                resolution=f"r{score}",
                agent=hostile,
                team=team,
                score=score,
                answered_at=timezone.now(),
            )
    page = login(client_a, tenant_a, owner_a).get("/reports/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "Customer satisfaction" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "<img src=x" not in html
    assert "&lt;b&gt;Team&lt;/b&gt;" in html
    assert "3.7" in html and "67%" in html


def test_csat_settings_api_reads_and_changes_them_for_admins_only(
    tenant_a, tenant_b, client_a, owner_a, agent_a
):
    api = login(client_a, tenant_a, owner_a)
    body = api.get("/api/v1/settings/csat/").json()
    assert body["enabled"] is False and body["question"]
    changed = api.patch(
        "/api/v1/settings/csat/",
        {"enabled": True, "ask_comment": True, "comment_minutes": 30},
        content_type="application/json",
    )
    assert changed.status_code == 200, changed.content
    assert changed.json()["enabled"] is True and changed.json()["comment_minutes"] == 30
    for bad in ({"comment_minutes": 0}, {"question": ""}, {"enabled": "maybe"}, {"question": "x" * 1100}):
        refused = api.patch("/api/v1/settings/csat/", bad, content_type="application/json")
        assert refused.status_code == 400, (bad, refused.content)
        assert refused.json()["error"]["code"], refused.content
    with schema_context(tenant_a.schema_name):
        assert CsatSettings.load().comment_minutes == 30
    with schema_context(tenant_b.schema_name):
        assert CsatSettings.load().enabled is False
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    assert {"get", "patch"} <= set(schema["paths"]["/api/v1/settings/csat/"])
    agent = login(client_a, tenant_a, agent_a)
    assert agent.get("/api/v1/settings/csat/").status_code == 403
    assert (
        agent.patch("/api/v1/settings/csat/", {"enabled": False}, content_type="application/json").status_code
        == 403
    )
