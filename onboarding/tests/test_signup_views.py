"""The signup pages on the public host: the same answer whatever exists, rate limits, the live check,
the confirm step, closed and approval modes, and hostile input shown escaped."""

from __future__ import annotations

import re
import uuid

import pytest
from django.test import Client

from onboarding.models import Signup
from onboarding.tests.helpers import signup_fields, token_from
from tenants.models import Tenant


def _client() -> Client:
    # A fresh address per test: rate-limit counters live in Redis across tests.
    return Client(
        HTTP_HOST="localhost", REMOTE_ADDR=f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.7"
    )


@pytest.fixture
def public(db):
    return _client()


@pytest.fixture
def post(public, django_capture_on_commit_callbacks):
    def _post(client=None, **overrides):
        with django_capture_on_commit_callbacks(execute=True):
            return (client or public).post("/signup/", signup_fields(**overrides))

    return _post


def test_the_home_page_links_to_sign_up(public):
    assert b'href="/signup/"' in public.get("/").content


def test_the_signup_page_is_on_the_public_host_only(public, client_a):
    assert public.get("/signup/").status_code == 200
    assert client_a.get("/signup/").status_code == 404


def test_the_whole_flow_through_the_pages(public, post, mailoutbox):
    response = post()
    assert response.status_code == 302 and response["Location"] == "/signup/sent/"
    token = token_from(mailoutbox[-1])
    confirm = public.get(f"/signup/verify/{token}/")
    assert confirm.status_code == 200 and b"Gamma Goods" in confirm.content
    assert not Tenant.objects.filter(
        slug="gamma"
    ).exists()  # opening the link (a mail scanner) creates nothing
    done = public.post(f"/signup/verify/{token}/")
    assert done.status_code == 200
    match = re.search(r'href="http://gamma\.localhost(/welcome/[^/"]+/)"', done.content.decode())
    assert match and 'http-equiv="refresh"' in done.content.decode()
    welcome = match.group(1)
    owner = Client(HTTP_HOST="gamma.localhost")
    assert owner.get(welcome)["Location"] == "/inbox/"
    inbox = owner.get("/inbox/")
    assert b'id="first-run-checklist"' in inbox.content


def test_the_answer_is_the_same_whether_the_subdomain_or_email_exists(post, mailoutbox):
    fresh = post(slug="fresh", email="new@fresh.test")
    taken = post(slug="alpha", email="owner@alpha.test")  # alpha's owner, alpha's subdomain
    pending = post(slug="fresh", email="new@fresh.test")  # the same pending e-mail again
    assert {r.status_code for r in (fresh, taken, pending)} == {302}
    assert {r["Location"] for r in (fresh, taken, pending)} == {"/signup/sent/"}
    assert [m.to for m in mailoutbox] == [["new@fresh.test"], ["owner@alpha.test"], ["new@fresh.test"]]
    assert Signup.objects.count() == 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"slug": "www"}, "reserved"),
        ({"slug": "Not Valid"}, "2 to 40 lowercase letters"),
        ({"email": "nope"}, "Enter a valid email address."),
        ({"password": "short"}, "too short"),
        ({"business_name": ""}, "This field is required."),
    ],
)
def test_bad_input_shows_its_message_and_stores_nothing(post, mailoutbox, overrides, message):
    response = post(**overrides)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Signup.objects.exists() and mailoutbox == []


def test_hostile_names_are_shown_escaped(public, post, mailoutbox):
    post(business_name='<script>alert("x")</script>', owner_name="<b>Eve</b>")
    page = public.get(f"/signup/verify/{token_from(mailoutbox[-1])}/").content.decode()
    assert "<script>alert" not in page and "&lt;script&gt;alert" in page
    assert '<script>alert("x")</script>' in mailoutbox[-1].subject  # plain text e-mail: as typed


def test_submissions_are_rate_limited_per_address(public, post, settings):
    settings.SIGNUP_IP_LIMIT = "2/m"
    assert post(email="a@x.test", slug="aaa").status_code == 302
    assert post(email="b@x.test", slug="bbb").status_code == 302
    over = post(email="c@x.test", slug="ccc")
    assert over.status_code == 429 and over["Retry-After"]
    assert not Signup.objects.filter(email="c@x.test").exists()
    assert post(client=_client(), email="c@x.test", slug="ccc").status_code == 302  # another address


def test_over_the_per_email_limit_the_page_says_sent_and_nothing_is_sent(post, settings, mailoutbox):
    settings.SIGNUP_EMAIL_LIMIT = "1/h"
    email = f"{uuid.uuid4().hex[:10]}@limit.test"
    first = post(email=email)
    second = post(client=_client(), email=email, slug="other")
    assert first.status_code == second.status_code == 302
    assert second["Location"] == "/signup/sent/"
    assert len(mailoutbox) == 1
    assert Signup.objects.get().slug == "gamma"


def test_the_live_check_answers_json_and_htmx(public):
    assert public.get("/signup/check/", {"slug": "gamma"}).json() == {
        "slug": "gamma",
        "available": True,
        "code": "available",
        "message": "gamma.localhost is available.",
    }
    assert public.get("/signup/check/", {"slug": "alpha"}).json()["code"] == "duplicate_slug"
    fragment = public.get("/signup/check/", {"slug": "<i>x"}, HTTP_HX_REQUEST="true").content.decode()
    assert 'data-code="invalid_slug"' in fragment and "<i>" not in fragment


def test_the_live_check_is_rate_limited_per_address(public, settings):
    settings.SIGNUP_CHECK_LIMIT = "2/m"
    public.get("/signup/check/", {"slug": "a1"})
    public.get("/signup/check/", {"slug": "a2"})
    over = public.get("/signup/check/", {"slug": "a3"})
    assert over.status_code == 429
    assert over.json()["error"]["code"] == "rate_limited"


@pytest.mark.parametrize(
    ("token", "status", "code"),
    [("garbage", 404, "invalid_link"), ("x" * 300, 404, "invalid_link")],
)
def test_a_bad_link_shows_a_page_not_a_500(public, token, status, code):
    response = public.get(f"/signup/verify/{token}/")
    assert response.status_code == status
    assert f'data-code="{code}"'.encode() in response.content
    assert public.post(f"/signup/verify/{token}/").status_code == status


def test_a_reused_link_says_so(public, post, mailoutbox):
    post()
    token = token_from(mailoutbox[-1])
    public.post(f"/signup/verify/{token}/")
    again = public.post(f"/signup/verify/{token}/")
    assert again.status_code == 410 and b'data-code="used_link"' in again.content


def test_closed_signup_shows_a_page_and_stores_nothing(public, post, settings):
    settings.SIGNUP_MODE = "closed"
    assert public.get("/signup/").status_code == 403
    assert post().status_code == 403
    assert not Signup.objects.exists()


def test_in_approval_mode_the_confirmed_page_says_it_waits(public, post, settings, mailoutbox):
    settings.SIGNUP_MODE = "approval"
    assert b"reviewed" in public.get("/signup/").content
    post()
    page = public.post(f"/signup/verify/{token_from(mailoutbox[-1])}/")
    assert page.status_code == 200 and b"waiting for approval" in page.content
    assert not Tenant.objects.filter(slug="gamma").exists()
