"""Sign-in and throttling messages a person reads: "email", not "username"; "3 minutes", not
"minute(s)"; one message per mistake in the forms that create people."""

from __future__ import annotations

import re
import uuid

from django.test import Client

from conftest import login, make_agent
from crm.auth import lockout_message


def _client() -> Client:
    n = uuid.uuid4().int
    return Client(HTTP_HOST="alpha.localhost", REMOTE_ADDR=f"10.{n % 250}.{(n >> 8) % 250}.7")


def test_a_wrong_password_says_email_and_password_not_username(tenant_a):
    agent = make_agent(tenant_a, email=f"words.{uuid.uuid4().hex[:6]}@alpha.test").user
    response = _client().post("/login/", {"username": agent.email, "password": "not-the-password"})
    page = response.content.decode()
    assert "Please enter a correct email and password." in page
    assert "correct username" not in page
    assert '<label for="id_username">Email</label>' in page


def test_the_admin_sign_in_says_email_too(tenant_a):
    page = _client().get("/admin/login/").content.decode()
    assert ">Email:</label>" in page
    response = _client().post("/admin/login/", {"username": "nobody@alpha.test", "password": "wrong-one"})
    assert "correct email and password" in response.content.decode()


def test_lockout_messages_count_minutes_in_words_that_agree():
    assert lockout_message(30) == "Too many failed sign-ins. Try again in 1 minute."
    assert lockout_message(60) == "Too many failed sign-ins. Try again in 1 minute."
    assert lockout_message(150) == "Too many failed sign-ins. Try again in 3 minutes."
    assert "(s)" not in lockout_message(900)


def test_an_invitation_with_a_bad_email_says_so_once(client_a, tenant_a, owner_a):
    login(client_a, tenant_a, owner_a)
    response = client_a.post("/settings/team/", {"email": "not-an-email", "name": "X", "role": "agent"})
    page = response.content.decode()
    assert page.count("Enter a valid email address.") == 1
    taken = client_a.post("/settings/team/", {"email": "owner@alpha.test", "name": "X", "role": "agent"})
    assert taken.content.decode().count("An agent with this email exists.") == 1


def test_the_throttled_password_reset_page_says_minutes_in_words(tenant_a, settings):
    settings.PASSWORD_RESET_IP_LIMIT = "1/h"
    client = _client()
    client.post("/password-reset/", {"email": "someone@alpha.test"})
    response = client.post("/password-reset/", {"email": "someone@alpha.test"})
    assert response.status_code == 429
    page = response.content.decode()
    # The window's end depends on the clock (django-ratelimit offsets it per key): 1 minute or more.
    assert re.search(r"Try again in (1 minute|\d+ minutes)\.", page) and "(s)" not in page
