from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.test import Client, TestCase
from django_tenants.utils import schema_context

from campaigns import services
from campaigns.models import Campaign, Recipient
from campaigns.tests.conftest import make_contact
from conftest import host_of, login, make_agent
from conversations.models import Message
from whatsapp.testing import run_jobs

BODY = {
    "name": "Spring",
    "template": "spring_sale",
    "language": "en",
    "audience": {"tags": ["vip"]},
    "parameters": {"body": ["{{contact.first_name}}", "20%"]},
}


@pytest.fixture
def owner_client(client_a: Any, tenant_a: Any, owner_a: Any) -> Any:
    return login(client_a, tenant_a, owner_a)


@pytest.fixture
def audience(templates: Any, tenant_a: Any) -> None:
    with schema_context(tenant_a.schema_name):
        make_contact("+15550000001", name="Ann Lee", tags=("vip",))
        make_contact("+15550000002", name='=HYPERLINK("http://evil","x")', tags=("vip",))
        make_contact("+15550000003", name="Out", tags=("vip",), consent="opted_out")


def _spring(templates: Any, **options: Any) -> Campaign:
    """The spring_sale campaign to the vip tag (the audience fixture)."""
    defaults: dict[str, Any] = {"name": "S", "parameters": {"body": ["a", "b"]}}
    return services.create_campaign(
        channel=templates,
        template="spring_sale",
        language="en",
        audience={"tags": ["vip"]},
        **{**defaults, **options},
    )


def test_the_api_creates_starts_and_reports_a_campaign(owner_client, templates, audience, tenant_a, sandbox):
    channels = owner_client.get("/api/v1/whatsapp/channels/").json()
    ids = [c["id"] for c in channels.get("results", channels)]
    assert ids == [templates.pk]
    response = owner_client.post(
        "/api/v1/campaigns/", {**BODY, "channel": templates.pk}, content_type="application/json"
    )
    assert response.status_code == 201, response.content
    created = response.json()
    assert (created["status"], created["total"]) == ("draft", 3)
    with TestCase.captureOnCommitCallbacks(execute=True):
        started = owner_client.post(f"/api/v1/campaigns/{created['id']}/start/")
    assert started.status_code == 200
    assert started.json()["status"] == "running"
    with schema_context(tenant_a.schema_name):
        run_jobs()
        services.run_due_campaigns()  # the scheduler's tick: recipients follow their messages
    assert len(sandbox.sent()) == 2
    detail = owner_client.get(f"/api/v1/campaigns/{created['id']}/").json()
    for key in ("status", "total", "queued", "sent", "delivered", "read", "replied", "failed", "skipped"):
        assert key in detail
    assert (detail["sent"], detail["skipped"], detail["status"]) == (2, 1, "completed")
    listed = owner_client.get("/api/v1/campaigns/").json()
    assert [c["id"] for c in listed.get("results", listed)] == [created["id"]]
    again = owner_client.post(f"/api/v1/campaigns/{created['id']}/resume/")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "invalid_state"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"audience": {"tags": "vip"}}, "invalid_audience"),
        ({"audience": {}}, "invalid_audience"),
        ({"audience": {"colour": "red"}}, "invalid_audience"),
        ({"parameters": {"body": ["one"]}}, "template_parameters"),
        ({"template": "missing"}, "unknown_template"),
        ({"name": ""}, "validation_error"),
        ({"window_start": "09:00"}, "invalid_window"),
    ],
)
def test_bad_input_is_a_400_with_a_stable_code_and_stores_nothing(
    change, code, owner_client, templates, audience, tenant_a
):
    response = owner_client.post(
        "/api/v1/campaigns/", {**BODY, "channel": templates.pk, **change}, content_type="application/json"
    )
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == code
    with schema_context(tenant_a.schema_name):
        assert Campaign.objects.count() == 0


def test_agents_cannot_see_campaigns_and_supervisors_cannot_control_them(
    client_a, templates, audience, tenant_a, owner_a
):
    with schema_context(tenant_a.schema_name):
        campaign = _spring(templates, created_by=owner_a)
    agent = make_agent(tenant_a, email="agent@alpha.test", role="agent")
    login(client_a, tenant_a, agent.user)
    assert client_a.get("/api/v1/campaigns/").status_code == 403
    assert client_a.get("/campaigns/").status_code == 403
    supervisor = make_agent(tenant_a, email="sup@alpha.test", role="supervisor")
    login(client_a, tenant_a, supervisor.user)
    assert client_a.get(f"/api/v1/campaigns/{campaign.pk}/").status_code == 200
    assert client_a.get(f"/campaigns/{campaign.pk}/").status_code == 200
    assert client_a.post(f"/api/v1/campaigns/{campaign.pk}/start/").status_code == 403
    assert (
        client_a.post(
            "/api/v1/campaigns/", {**BODY, "channel": templates.pk}, content_type="application/json"
        ).status_code
        == 403
    )
    with schema_context(tenant_a.schema_name):
        campaign.refresh_from_db()
        assert campaign.status == "draft"


def test_another_tenant_s_campaign_is_a_404(
    client_b, tenant_b, owner_b, templates, audience, tenant_a, owner_a
):
    with schema_context(tenant_a.schema_name):
        campaign = _spring(templates)
    login(client_b, tenant_b, owner_b)
    for url in (
        f"/api/v1/campaigns/{campaign.pk}/",
        f"/campaigns/{campaign.pk}/",
        f"/campaigns/{campaign.pk}/export.csv",
    ):
        assert client_b.get(url).status_code == 404
    for action in ("start", "pause", "resume", "cancel"):
        assert client_b.post(f"/api/v1/campaigns/{campaign.pk}/{action}/").status_code == 404
    response = client_b.post(
        "/api/v1/campaigns/", {**BODY, "channel": templates.pk}, content_type="application/json"
    )
    assert response.status_code == 404


def test_the_pages_create_a_campaign_show_its_progress_and_export_it_safely(
    owner_client, templates, audience, tenant_a, sandbox
):
    page = owner_client.get("/campaigns/new/")
    assert page.status_code == 200
    assert b"spring_sale|en" in page.content
    form = {
        "name": "<b>Spring</b>",
        "channel": templates.pk,
        "template": "spring_sale|en",
        "tags": "vip",
        "body": "{{contact.first_name}}\n20%",
    }
    preview = owner_client.post("/campaigns/preview/", form)
    assert b"<strong data-eligible>2</strong>" in preview.content
    assert b"Opted out: 1" in preview.content
    response = owner_client.post("/campaigns/new/", form)
    assert response.status_code == 302, response.content.decode()[:3000]
    with schema_context(tenant_a.schema_name):
        campaign = Campaign.objects.get()
    detail = owner_client.get(f"/campaigns/{campaign.pk}/")
    assert b"&lt;b&gt;Spring&lt;/b&gt;" in detail.content and b"<b>Spring</b>" not in detail.content
    assert b'data-campaign="%d"' % campaign.pk in detail.content
    # A draft's page says whom it would reach now (its recipients are settled when it starts).
    assert (
        b"<strong data-eligible>2</strong> contacts will receive it; 1 skipped (Opted out: 1)"
        in detail.content
    )
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert owner_client.post(f"/campaigns/{campaign.pk}/start/").status_code == 302
    with schema_context(tenant_a.schema_name):
        run_jobs()
        assert Message.objects.count() == 2
        sent = Message.objects.select_related("conversation").first()
    # In the conversation a campaign's message says it came from a campaign, not from the bot.
    conversation = owner_client.get(f"/inbox/c/{sent.conversation_id}/")
    assert b'<span class="by">Campaign</span>' in conversation.content
    listing = owner_client.get("/campaigns/")
    assert b"&lt;b&gt;Spring&lt;/b&gt;" in listing.content
    export = owner_client.get(f"/campaigns/{campaign.pk}/export.csv")
    rows = list(csv.reader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert rows[0][:4] == ["contact_id", "name", "phone", "status"]
    names = {r[1] for r in rows[1:]}
    assert '\'=HYPERLINK("http://evil","x")' in names
    with schema_context(tenant_a.schema_name):
        assert len(rows) - 1 == Recipient.objects.filter(campaign=campaign).count() == 3
    started = owner_client.get(f"/campaigns/{campaign.pk}/").content
    assert b"data-eligible" not in started
    assert b'<li title="opted_out">Opted out: 1</li>' in started


def test_the_campaign_list_costs_the_same_queries_for_one_campaign_or_many(
    owner_client, templates, audience, tenant_a
):
    def create() -> None:
        with schema_context(tenant_a.schema_name):
            campaign = _spring(templates)
            services.start_campaign(campaign=campaign)

    create()
    owner_client.get("/api/v1/campaigns/")
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as one:
        assert owner_client.get("/api/v1/campaigns/").status_code == 200
    for _ in range(3):
        create()
    with CaptureQueriesContext(connection) as four:
        listed = owner_client.get("/api/v1/campaigns/").json()
    assert len(listed.get("results", listed)) == 4
    assert all(
        c["sent"] == 0 and c["pending"] == 2 and c["skipped"] == 1 for c in listed.get("results", listed)
    )
    assert len(four) == len(one)


def test_owners_allow_unknown_consent_for_marketing_and_supervisors_cannot(
    owner_client, client_b, templates, tenant_a
):
    assert b'name="marketing_to_unknown"' in owner_client.get("/campaigns/").content
    assert owner_client.post("/campaigns/settings/", {"marketing_to_unknown": "on"}).status_code == 302
    with schema_context(tenant_a.schema_name):
        assert services.campaign_settings().marketing_to_unknown is True
    supervisor = make_agent(tenant_a, email="sup2@alpha.test", role="supervisor")
    login(owner_client, tenant_a, supervisor.user)
    assert b'name="marketing_to_unknown"' not in owner_client.get("/campaigns/").content
    assert owner_client.post("/campaigns/settings/", {}).status_code == 403
    with schema_context(tenant_a.schema_name):
        assert services.campaign_settings().marketing_to_unknown is True


NAMED_WELCOME = {
    "name": "named_welcome",
    "language": "en",
    "status": "APPROVED",
    "category": "UTILITY",
    "parameter_format": "NAMED",
    "components": [
        {"type": "HEADER", "format": "IMAGE"},
        {"type": "BODY", "text": "Hi {{first_name}}, your <b>{{plan}}</b> plan starts today."},
    ],
}


def test_the_form_shows_the_chosen_template_s_text_and_what_it_takes(
    owner_client, templates, audience, tenant_a, sandbox
):
    from campaigns.tests.conftest import ORDER_NOTE, SPRING_SALE
    from whatsapp.services import sync_templates
    from whatsapp.testing import WABA_A

    sandbox.set_templates(WABA_A, [SPRING_SALE, ORDER_NOTE, NAMED_WELCOME])
    with schema_context(tenant_a.schema_name):
        sync_templates(channel=templates)
    form = {"name": "x", "channel": templates.pk, "template": "spring_sale|en", "tags": "vip"}
    spring = owner_client.post("/campaigns/preview/", form).content.decode()
    assert "Hi {{1}}, {{2}} off everything this week." in spring
    assert "The body takes 2 parameters: one a line under Body, in order." in spring
    named = owner_client.post(
        "/campaigns/preview/", {**form, "template": "named_welcome|en"}
    ).content.decode()
    assert "your &lt;b&gt;{{plan}}&lt;/b&gt; plan" in named  # the template's text is escaped
    assert "The body takes 2 parameters (first_name, plan)" in named
    assert "Its header needs an image: a link or an uploaded media id." in named

    # The page's one value a line fills a named template's placeholders in their order.
    created = owner_client.post(
        "/campaigns/new/",
        {
            **form,
            "template": "named_welcome|en",
            "body": "{{contact.first_name}}\nGold",
            "header_link": "https://example.com/welcome.png",
        },
    )
    assert created.status_code == 302, created.content.decode()[:2000]
    with schema_context(tenant_a.schema_name):
        campaign = Campaign.objects.get(template_name="named_welcome")
    assert campaign.parameters["body"] == {"first_name": "{{contact.first_name}}", "plan": "Gold"}


def test_a_csv_on_the_form_is_summarised_before_saving_and_a_refused_campaign_keeps_none_of_its_contacts(
    owner_client, templates, tenant_a
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from crm.models import Contact

    rows = (
        "phone,name,marketing_consent\n+34612345001,Lucia,yes\n+34612345002,Mateo,yes\n"
        "+34612345001,Lucia,yes\nnope,Bad,yes\n"
    )
    form = {"name": "CSV", "channel": templates.pk, "template": "spring_sale|en"}

    def upload() -> SimpleUploadedFile:
        return SimpleUploadedFile("a.csv", rows.encode(), content_type="text/csv")

    preview = owner_client.post("/campaigns/preview/", {**form, "csv": upload()}).content.decode()
    assert "The file has <strong>2</strong> numbers and 1 row without a valid one (skipped)." in preview
    assert "audience is empty" not in preview
    refused = owner_client.post("/campaigns/new/", {**form, "body": "only one", "csv": upload()})
    assert refused.status_code == 400 and "body takes 2 parameters" in refused.content.decode()
    with schema_context(tenant_a.schema_name):
        assert not Contact.objects.filter(phone__startswith="+3461234500").exists()  # the preview stored none
    saved = owner_client.post(
        "/campaigns/new/", {**form, "body": "{{contact.first_name}}\n10%", "csv": upload()}
    )
    assert saved.status_code == 302
    with schema_context(tenant_a.schema_name):
        assert Contact.objects.filter(phone__startswith="+3461234500").count() == 2
        campaign = Campaign.objects.get(name="CSV")
    page = owner_client.get(f"/campaigns/{campaign.pk}/").content.decode()
    assert "<strong data-eligible>2</strong> contacts will receive it." in page
    assert "Draft saved: 2 contacts in the audience." in page


def test_one_contact_is_one_contact(owner_client, templates, tenant_a):
    with schema_context(tenant_a.schema_name):
        make_contact("+14155550171", name="Solo", tags=("solo",))
    form = {"name": "x", "channel": templates.pk, "template": "spring_sale|en", "tags": "solo"}
    assert (
        "<strong data-eligible>1</strong> contact will receive it."
        in owner_client.post("/campaigns/preview/", form).content.decode()
    )


def test_a_csv_posted_to_the_preview_by_a_lower_role_or_too_big_or_not_utf8_stores_nothing(
    owner_client, templates, tenant_a
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from crm.models import Contact, ContactImport
    from crm.services import MAX_IMPORT_BYTES

    def upload(content: bytes) -> SimpleUploadedFile:
        return SimpleUploadedFile("a.csv", content, content_type="text/csv")

    form = {"name": "x", "channel": templates.pk, "template": "spring_sale|en", "body": "a\nb"}
    good = b"phone,name\n+34612345009,Eve\n"
    supervisor = make_agent(tenant_a, email="sup-csv@alpha.test", role="supervisor")
    lower = login(Client(HTTP_HOST=host_of(tenant_a)), tenant_a, supervisor.user)
    assert lower.post("/campaigns/preview/", {**form, "csv": upload(good)}).status_code == 403
    assert lower.post("/campaigns/new/", {**form, "csv": upload(good)}).status_code == 403
    big = good + b"+34612345010,Big\n" * (MAX_IMPORT_BYTES // 17 + 1)
    too_big = owner_client.post("/campaigns/preview/", {**form, "csv": upload(big)}).content.decode()
    assert "The file is larger than 10 MB." in too_big
    latin = owner_client.post(
        "/campaigns/preview/", {**form, "csv": upload("phone\n+34612345011,Jos\xe9\n".encode("latin-1"))}
    )
    assert "The file must be UTF-8 CSV." in latin.content.decode()
    refused = owner_client.post("/campaigns/new/", {**form, "csv": upload(big)})
    assert refused.status_code == 400 and "larger than 10 MB" in refused.content.decode()
    with schema_context(tenant_a.schema_name):
        assert not Contact.objects.filter(phone__startswith="+3461234501").exists()
        assert not Contact.objects.filter(phone="+34612345009").exists()
        assert not ContactImport.objects.exists() and not Campaign.objects.exists()


def test_the_page_and_the_export_count_who_opted_out_after_the_campaign_reached_them(
    owner_client, templates, audience, tenant_a, sandbox
):
    import datetime as dt

    from crm.models import Contact
    from whatsapp import payloads
    from whatsapp.testing import PNID_A, post_webhook

    with schema_context(tenant_a.schema_name):
        campaign = _spring(templates, parameters={"body": ["{{contact.first_name}}", "20%"]})
        with TestCase.captureOnCommitCallbacks(execute=True):
            services.start_campaign(campaign=campaign)
        run_jobs()
        sent_at = {
            m.conversation.contact.name: m.sent_at
            for m in Message.objects.select_related("conversation__contact")
        }
        assert all(sent_at.values()) and len(sent_at) == 2
        # Opted out before the message went (changed on the contact since): not this campaign's doing.
        Contact.objects.filter(name__startswith="=HYPERLINK").update(
            marketing_consent="opted_out",
            marketing_consent_at=min(sent_at.values()) - dt.timedelta(minutes=5),
        )
    page = owner_client.get(f"/campaigns/{campaign.pk}/").content.decode()
    assert "Opted out after receiving it: <span data-opted-out>0</span>" in page

    with schema_context(tenant_a.schema_name):  # a hostile name is shown as text on the list
        Contact.objects.filter(name="Ann Lee").update(name="Ann <img src=x onerror=alert(1)>")
    # Ann answers the campaign with STOP.
    reply = payloads.text_event(phone_number_id=PNID_A, wa_id="15550000001", text="STOP")
    assert post_webhook(Client(HTTP_HOST="localhost"), reply).status_code == 200
    run_jobs()

    page = owner_client.get(f"/campaigns/{campaign.pk}/").content.decode()
    assert "Opted out after receiving it: <span data-opted-out>1</span>" in page
    listed = page.split("Opted out after receiving it")[1]
    assert ">Ann &lt;img src=x onerror=alert(1)&gt;</a>" in listed and "<img src=x" not in page
    assert "HYPERLINK" not in listed
    export = owner_client.get(f"/campaigns/{campaign.pk}/export.csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode())))
    opted = {row["name"]: row["opted_out_at"] for row in rows}
    assert opted["Ann <img src=x onerror=alert(1)>"] and not opted["Out"]
    assert not opted['\'=HYPERLINK("http://evil","x")']


def test_who_opted_out_is_not_shown_to_agents_or_another_tenant(
    client_a, client_b, tenant_b, owner_b, templates, audience, tenant_a
):
    with schema_context(tenant_a.schema_name):
        campaign = _spring(templates)
    agent = make_agent(tenant_a, email="agent-optout@alpha.test", role="agent").user
    login(client_a, tenant_a, agent)
    assert client_a.get(f"/campaigns/{campaign.pk}/").status_code == 403
    assert client_a.get(f"/campaigns/{campaign.pk}/export.csv").status_code == 403
    login(client_b, tenant_b, owner_b)
    assert client_b.get(f"/campaigns/{campaign.pk}/").status_code == 404
    assert client_b.get(f"/campaigns/{campaign.pk}/export.csv").status_code == 404
