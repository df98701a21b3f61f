"""The notification centre: notify(), the bell's pages, mark read, preferences, e-mails after commit,
the assignment digest, and the callers wired to it (assignment, a number needing re-authorisation)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import schema_context

from conftest import host_of, login, make_agent
from core.errors import ServiceError
from crm import actors
from crm.models import Notification, NotificationPreference
from crm.services import notifications
from crm.services.notifications import notify

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """The e-mail jobs enqueued (what a worker would run), instead of the stub broker's queue."""
    calls: list[list[int]] = []
    monkeypatch.setattr(actors.send_notification_emails, "send", lambda ids: calls.append(list(ids)))
    return calls


def _notify(**kwargs: Any) -> list[Notification]:
    defaults: dict[str, Any] = {"kind": "mention", "title": "Ann mentioned you"}
    return notify(**{**defaults, **kwargs})


# --- notify() ---------------------------------------------------------------------------------------


def test_notify_stores_one_row_per_recipient_users_or_agents_once_each(tenant_a, sent):
    ann = make_agent(tenant_a, email="ann@alpha.test")
    bob = make_agent(tenant_a, email="bob@alpha.test")
    with schema_context("alpha"):
        rows = _notify(
            recipients=[ann, bob.user, ann.user], kind="sla_breach", title="SLA breached", url="/inbox/"
        )
        stored = list(Notification.objects.order_by("user_id").values_list("user_id", "kind", "title", "url"))
    assert len(rows) == 2
    assert stored == [
        (ann.user_id, "sla_breach", "SLA breached", "/inbox/"),
        (bob.user_id, "sla_breach", "SLA breached", "/inbox/"),
    ]


def test_notify_skips_inactive_users_and_refuses_an_unknown_kind(tenant_a, sent):
    ann = make_agent(tenant_a, email="ann@alpha.test")
    with schema_context("alpha"):
        get_user_model().objects.filter(pk=ann.user_id).update(is_active=False)
        assert _notify(recipients=[ann]) == []
        with pytest.raises(ServiceError) as error:
            _notify(recipients=[ann], kind="gossip")
        assert error.value.code == "invalid_kind"
        with pytest.raises(ServiceError) as error:
            _notify(recipients=[ann], title="   ")
        assert error.value.code == "invalid_title"
        assert Notification.objects.count() == 0


def test_a_user_of_another_tenant_is_never_notified_even_with_a_matching_id(
    tenant_a, tenant_b, owner_a, sent
):
    with schema_context("beta"):
        foreign = get_user_model().objects.get(email="owner@beta.test")
    # The same primary key exists in alpha (each schema numbers its own users from 1).
    with schema_context("alpha"):
        assert get_user_model().objects.filter(pk=foreign.pk).exists()
        assert _notify(recipients=[foreign]) == []
        assert Notification.objects.count() == 0


def test_a_link_off_the_site_is_dropped(tenant_a, owner_a, sent):
    with schema_context("alpha"):
        for url in ("https://evil.example/", "//evil.example/", "javascript:alert(1)", "/\\evil.example"):
            (row,) = _notify(recipients=[owner_a], url=url)
            assert row.url == ""


# --- e-mail -----------------------------------------------------------------------------------------


def test_the_email_job_is_enqueued_only_after_commit_and_per_preference(
    tenant_a, sent, django_capture_on_commit_callbacks
):
    ann = make_agent(tenant_a, email="ann@alpha.test")
    bob = make_agent(tenant_a, email="bob@alpha.test")
    with schema_context("alpha"):
        notifications.set_email_preferences(user=bob.user, choices={"mention": False})
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            (ann_row, _bob_row) = _notify(recipients=[ann, bob])
        assert sent == []  # nothing leaves inside the transaction
        for callback in callbacks:
            callback()
    assert sent == [[ann_row.pk]]


def test_assignment_emails_are_off_by_default_and_the_rest_on(
    tenant_a, owner_a, sent, django_capture_on_commit_callbacks
):
    with schema_context("alpha"):
        with django_capture_on_commit_callbacks(execute=True):
            _notify(recipients=[owner_a], kind="assignment", title="Assigned")
        assert sent == []
        with django_capture_on_commit_callbacks(execute=True):
            (row,) = _notify(recipients=[owner_a], kind="sla_breach", title="Breach")
        assert sent == [[row.pk]]
        prefs = notifications.email_preferences(user_ids=[owner_a.pk])[owner_a.pk]
    assert prefs == {
        "assignment": False,
        "mention": True,
        "sla_breach": True,
        "number_reauth": True,
        "digest": True,
    }


def test_the_email_job_sends_escaped_html_and_plain_text_once(tenant_a, owner_a, mailoutbox, sent):
    with schema_context("alpha"):
        (row,) = _notify(recipients=[owner_a], title=HOSTILE, body=HOSTILE, url="/inbox/c/1/")
        assert notifications.send_notification_emails(notification_ids=[row.pk]) == 1
        assert notifications.send_notification_emails(notification_ids=[row.pk]) == 0  # a redelivered job
        row.refresh_from_db()
    assert row.emailed_at is not None
    assert len(mailoutbox) == 1
    message = mailoutbox[0]
    assert message.to == ["owner@alpha.test"]
    assert HOSTILE in message.body  # plain text: as written
    html = message.alternatives[0][0]
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;" in html
    assert "http://alpha.localhost" in html and "/inbox/c/1/" in html


def test_set_email_preferences_refuses_an_unknown_kind(tenant_a, owner_a):
    with schema_context("alpha"), pytest.raises(ServiceError) as error:
        notifications.set_email_preferences(user=owner_a, choices={"spam": True})
    assert error.value.code == "invalid_kind"


# --- digest -----------------------------------------------------------------------------------------


def test_the_digest_summarises_old_unread_assignments_once(tenant_a, owner_a, mailoutbox, sent):
    ann = make_agent(tenant_a, email="ann@alpha.test")
    old = timezone.now() - dt.timedelta(hours=2)
    with schema_context("alpha"):
        first, second = (
            _notify(recipients=[ann], kind="assignment", title=f"Conversation {n}")[0] for n in (1, 2)
        )
        read = _notify(recipients=[ann], kind="assignment", title="Already read")[0]
        fresh = _notify(recipients=[ann], kind="assignment", title="Just now")[0]
        mention = _notify(recipients=[ann], kind="mention", title="Not an assignment")[0]
        Notification.objects.filter(pk__in=[first.pk, second.pk, read.pk, mention.pk]).update(created_at=old)
        Notification.objects.filter(pk=read.pk).update(read_at=timezone.now())
        assert notifications.send_assignment_digests() == 1
        assert notifications.send_assignment_digests() == 0  # once
        covered = set(Notification.objects.filter(emailed_at__isnull=False).values_list("pk", flat=True))
    assert covered == {first.pk, second.pk}
    assert fresh.pk not in covered
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["ann@alpha.test"]
    assert "2 unread assignments" in mailoutbox[0].subject
    assert "Conversation 1" in mailoutbox[0].body and "Already read" not in mailoutbox[0].body


def test_the_digest_respects_the_preference(tenant_a, mailoutbox, sent):
    ann = make_agent(tenant_a, email="ann@alpha.test")
    with schema_context("alpha"):
        notifications.set_email_preferences(user=ann.user, choices={"digest": False})
        _notify(recipients=[ann], kind="assignment", title="Old")
        Notification.objects.update(created_at=timezone.now() - dt.timedelta(hours=2))
        assert notifications.send_assignment_digests() == 0
    assert mailoutbox == []


def test_the_digest_job_runs_in_every_tenant_schema(tenant_a, monkeypatch):
    schemas: list[str] = []
    monkeypatch.setattr(
        actors.send_assignment_digests_for_tenant, "send_with_options", lambda **kw: schemas.append(kw)
    )
    import tenants.jobs

    monkeypatch.setattr(tenants.jobs, "send_in_schema", lambda actor, schema, *a, **k: schemas.append(schema))
    actors.send_assignment_digests()
    assert "alpha" in schemas and "beta" in schemas


# --- pages ------------------------------------------------------------------------------------------


def test_the_list_shows_only_my_notifications_newest_first_escaped(client_a, tenant_a, owner_a, sent):
    ann = make_agent(tenant_a, email="ann@alpha.test")
    with schema_context("alpha"):
        _notify(recipients=[owner_a], title="Older")
        _notify(recipients=[owner_a], title=HOSTILE)
        _notify(recipients=[ann], title="Ann's own")
    login(client_a, tenant_a, owner_a)
    response = client_a.get("/notifications/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "Ann&#x27;s own" not in html and "Ann's own" not in html
    assert "<script>alert" not in html and "&lt;script&gt;" in html
    assert html.index("&lt;script&gt;") < html.index("Older")


def test_the_list_costs_the_same_queries_for_many_notifications(client_a, tenant_a, owner_a, sent):
    login(client_a, tenant_a, owner_a)

    def queries() -> int:
        with CaptureQueriesContext(db_connection) as captured:
            assert client_a.get("/notifications/").status_code == 200
        return len(captured)

    with schema_context("alpha"):
        _notify(recipients=[owner_a], title="One")
    queries()  # the first request of a session warms per-process caches
    few = queries()
    with schema_context("alpha"):
        for n in range(30):
            _notify(recipients=[owner_a], title=f"N {n}", url=f"/inbox/c/{n}/")
    assert queries() == few


def test_the_list_pages(client_a, tenant_a, owner_a, sent):
    with schema_context("alpha"):
        for n in range(55):
            _notify(recipients=[owner_a], title=f"Item {n:02d}")
    login(client_a, tenant_a, owner_a)
    first = client_a.get("/notifications/").content.decode()
    second = client_a.get("/notifications/?page=2").content.decode()
    assert "Item 54" in first and "Item 04" not in first and "Next" in first
    assert "Item 04" in second and "Item 54" not in second


def test_the_summary_counts_unread_and_the_bell_marks_all_read(client_a, tenant_a, owner_a, sent):
    with schema_context("alpha"):
        rows = [_notify(recipients=[owner_a], title=f"T{n}")[0] for n in range(3)]
    login(client_a, tenant_a, owner_a)
    data = client_a.get("/notifications/summary/").json()
    assert data["unread"] == 3 and [i["id"] for i in data["latest"]] == [r.pk for r in reversed(rows)]
    assert client_a.get(f"/notifications/summary/?after={rows[1].pk}").json()["latest"][0]["id"] == rows[2].pk
    response = client_a.post(f"/notifications/{rows[0].pk}/read/")
    assert response.status_code == 302
    assert client_a.get("/notifications/summary/").json()["unread"] == 2
    menu = client_a.post("/notifications/read-all/", HTTP_HX_REQUEST="true")
    assert menu.status_code == 200 and 'data-unread="0"' in menu.content.decode()
    assert client_a.get("/notifications/summary/").json()["unread"] == 0


def test_opening_a_notification_marks_it_read_and_goes_to_its_link(client_a, tenant_a, owner_a, sent):
    with schema_context("alpha"):
        (row,) = _notify(recipients=[owner_a], url="/inbox/c/7/")
    login(client_a, tenant_a, owner_a)
    response = client_a.post(f"/notifications/{row.pk}/read/", {"open": "1"})
    assert response.status_code == 302 and response["Location"] == "/inbox/c/7/"
    response = client_a.post(f"/notifications/{row.pk}/read/", {"next": "https://evil.example/"})
    assert response["Location"] == "/notifications/"


def test_marking_another_users_notification_read_is_404(client_a, tenant_a, owner_a, sent):
    ann = make_agent(tenant_a, email="ann@alpha.test")
    with schema_context("alpha"):
        (row,) = _notify(recipients=[ann])
    login(client_a, tenant_a, owner_a)
    assert client_a.post(f"/notifications/{row.pk}/read/").status_code == 404
    with schema_context("alpha"):
        row.refresh_from_db()
    assert row.read_at is None


def test_another_tenants_notifications_are_invisible_and_404(
    client_b, tenant_a, tenant_b, owner_a, owner_b, sent
):
    with schema_context("alpha"):
        (row,) = _notify(recipients=[owner_a], title="Alpha secret")
    login(client_b, tenant_b, owner_b)
    assert "Alpha secret" not in client_b.get("/notifications/").content.decode()
    assert client_b.get("/notifications/summary/").json() == {"unread": 0, "latest": []}
    assert client_b.post(f"/notifications/{row.pk}/read/").status_code == 404
    with schema_context("alpha"):
        row.refresh_from_db()
    assert row.read_at is None


def test_signed_out_visitors_are_sent_to_sign_in(client_a, tenant_a):
    assert client_a.get("/notifications/").status_code == 302
    assert client_a.get("/notifications/summary/").status_code == 302
    assert client_a.post("/notifications/1/read/").status_code == 302


def test_mark_read_needs_post(client_a, tenant_a, owner_a, sent):
    with schema_context("alpha"):
        (row,) = _notify(recipients=[owner_a])
    login(client_a, tenant_a, owner_a)
    assert client_a.get(f"/notifications/{row.pk}/read/").status_code == 405


def test_every_staff_page_has_the_bell(client_a, tenant_a, owner_a):
    login(client_a, tenant_a, owner_a)
    html = client_a.get("/settings/").content.decode()
    assert "data-notifications" in html and "js/notifications.js" in html


def test_settings_me_saves_email_preferences(client_a, tenant_a, owner_a):
    login(client_a, tenant_a, owner_a)
    page = client_a.get("/settings/").content.decode()
    assert 'name="email_mention" checked' in page and 'name="email_assignment" >' in page
    response = client_a.post("/settings/notifications/", {"email_assignment": "on", "email_sla_breach": "on"})
    assert response.status_code == 302
    with schema_context("alpha"):
        prefs = notifications.email_preferences(user_ids=[owner_a.pk])[owner_a.pk]
        assert NotificationPreference.objects.filter(user=owner_a).count() == 5
    assert prefs["assignment"] is True and prefs["mention"] is False and prefs["sla_breach"] is True


def test_hosts_are_tenants(tenant_a):
    assert host_of(tenant_a) == "alpha.localhost"


# --- assignment -------------------------------------------------------------------------------------


def _conversation(tenant: Any, name: str = "Grace") -> Any:
    from conversations.models import Conversation
    from crm.models import Contact

    with schema_context(tenant.schema_name):
        contact = Contact.objects.create(name=name, phone="+14155552671")
        return Conversation.objects.create(contact=contact)


def test_an_assignment_by_someone_else_notifies_the_assignee(tenant_a, owner_a, sent):
    from conversations import services as inbox

    ann = make_agent(tenant_a, email="ann@alpha.test")
    conversation = _conversation(tenant_a, name=HOSTILE)
    with schema_context("alpha"):
        inbox.assign_conversation(conversation=conversation, assignee=ann.user, team=None, by=owner_a)
        inbox.assign_conversation(
            conversation=conversation, assignee=ann.user, team=None, by=owner_a
        )  # no change
        rows = list(Notification.objects.all())
    assert len(rows) == 1
    (row,) = rows
    assert (row.user_id, row.kind, row.conversation_id) == (ann.user_id, "assignment", conversation.pk)
    assert row.url == f"/inbox/c/{conversation.pk}/"
    assert "assigned you the conversation with" in row.title and row.title.endswith(HOSTILE)


def test_taking_a_conversation_oneself_notifies_nobody(tenant_a, owner_a, sent):
    from conversations import services as inbox

    conversation = _conversation(tenant_a)
    with schema_context("alpha"):
        inbox.assign_conversation(conversation=conversation, assignee=owner_a, team=None, by=owner_a)
        assert Notification.objects.count() == 0


# --- API --------------------------------------------------------------------------------------------


def test_the_api_lists_and_marks_only_my_notifications(tenant_a, owner_a, sent):
    from crm.tests.helpers import api_client, assert_error, issue_key

    ann = make_agent(tenant_a, email="ann@alpha.test")
    with schema_context("alpha"):
        mine = [_notify(recipients=[owner_a], title=f"Mine {n}")[0] for n in range(2)]
        (anns,) = _notify(recipients=[ann], title="Ann's")
    client = api_client(tenant_a, issue_key(tenant_a, user=owner_a, role="owner"))
    body = client.get("/api/v1/notifications/").json()
    assert [r["id"] for r in body["results"]] == [mine[1].pk, mine[0].pk]
    response = client.post(f"/api/v1/notifications/{mine[0].pk}/read/")
    assert response.status_code == 200 and response.json()["read_at"]
    assert [r["id"] for r in client.get("/api/v1/notifications/?unread=true").json()["results"]] == [
        mine[1].pk
    ]
    assert_error(client.post(f"/api/v1/notifications/{anns.pk}/read/"), 404, "not_found")
    assert client.post("/api/v1/notifications/read-all/").json() == {"marked": 1}


def test_the_api_preferences_round_trip_and_refuse_bad_input(tenant_a, owner_a):
    from crm.tests.helpers import api_client, assert_error, issue_key

    client = api_client(tenant_a, issue_key(tenant_a, user=owner_a, role="owner"))
    assert client.get("/api/v1/notifications/preferences/").json()["assignment"] is False
    response = client.patch(
        "/api/v1/notifications/preferences/", {"assignment": True}, content_type="application/json"
    )
    assert response.status_code == 200 and response.json()["assignment"] is True
    bad = client.patch("/api/v1/notifications/preferences/", {"spam": True}, content_type="application/json")
    assert_error(bad, 400, "invalid_kind")
    bad = client.patch(
        "/api/v1/notifications/preferences/", {"mention": "yes"}, content_type="application/json"
    )
    assert_error(bad, 400, "invalid_preferences")


def test_an_integration_key_has_no_notifications(tenant_a):
    from crm.tests.helpers import api_client, assert_error, issue_key

    client = api_client(tenant_a, issue_key(tenant_a, role="admin"))
    assert_error(client.get("/api/v1/notifications/"), 403, "no_person")


def test_another_tenants_key_sees_nothing_of_mine(tenant_a, tenant_b, owner_a, owner_b, sent):
    from crm.tests.helpers import api_client, assert_error, issue_key

    with schema_context("alpha"):
        (row,) = _notify(recipients=[owner_a], title="Alpha only")
    client = api_client(tenant_b, issue_key(tenant_b, user=owner_b, role="owner"))
    assert client.get("/api/v1/notifications/").json()["results"] == []
    assert_error(client.post(f"/api/v1/notifications/{row.pk}/read/"), 404, "not_found")


def test_the_bell_menu_lists_my_latest_escaped_and_nobody_elses(client_a, tenant_a, owner_a, sent):
    ann = make_agent(tenant_a, email="ann@alpha.test")
    with schema_context("alpha"):
        _notify(recipients=[owner_a], title=HOSTILE, body=HOSTILE)
        _notify(recipients=[ann], title="For Ann only")
    login(client_a, tenant_a, owner_a)
    html = client_a.get("/notifications/menu/").content.decode()
    assert "<script>alert" not in html and "<img src=x" not in html
    assert html.count("&lt;script&gt;") == 2
    assert "For Ann only" not in html and 'data-unread="1"' in html
