"""Finding 6 of the security probe: signed but oddly shaped bodies. Whatever a signed body holds, the check
answers 200 or a clean 4xx, never an exception (a 500); a stored body never makes processing fail or
retry. Property-based: arbitrary JSON, and Meta's own payloads with a wrong value or a missing key at any
position. Example counts keep the module under a minute."""

from __future__ import annotations

import copy
import itertools
import json
import os
from typing import Any

import pytest
from django.conf import settings as django_settings
from django_tenants.utils import schema_context
from hypothesis import HealthCheck, assume, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from conversations.models import Message
from tenants.models import WebhookEvent
from whatsapp import parsing, payloads
from whatsapp.testing import FIXTURES, PNID_A, PNID_B, WABA_A, fixture, post_webhook
from whatsapp.webhook import Accepted, Rejected, Secrets, check_webhook

OWN_SECRET = "beta-own-secret"
LIMIT = 3 * 1024 * 1024

# Values Meta never sends where they land: NULs and lone surrogates (PostgreSQL refuses both), huge
# numbers, digits that look like ids, NaN, nesting.
ODD_TEXT = st.sampled_from(
    ["", "\x00", "a\x00b", "\ud800", "9" * 40, PNID_A, PNID_B, "NONE", "text", "é" * 300]
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()
    | st.text(max_size=12)
    | ODD_TEXT
)
KEYS = st.sampled_from(
    [
        "object",
        "entry",
        "id",
        "changes",
        "field",
        "value",
        "metadata",
        "phone_number_id",
        "messages",
        "statuses",
        "contacts",
        "errors",
        "type",
        "text",
        "body",
        "from",
        "timestamp",
        "context",
        "event",
    ]
) | st.text(max_size=6)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=12,
)

TEMPLATE_UPDATE = {
    "object": "whatsapp_business_account",
    "entry": [
        {
            "id": WABA_A,
            "time": 1751247548,
            "changes": [
                {
                    "field": "message_template_status_update",
                    "value": {
                        "event": "REJECTED",
                        "message_template_id": 1689556908129832,
                        "message_template_name": "order_confirmation",
                        "message_template_language": "en-US",
                        "reason": "INVALID_FORMAT",
                    },
                }
            ],
        }
    ],
}
SHAPED = [fixture(path.stem) for path in sorted(FIXTURES.glob("*.json"))] + [TEMPLATE_UPDATE]


def _positions(node: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key and index of the body, at any depth."""
    found = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, child in items:
        found.append((*at, key))
        found += _positions(child, (*at, key))
    return found


@st.composite
def mutated(draw: Any) -> dict[str, Any]:
    """One of Meta's payloads with one to three positions given a wrong value or removed."""
    body = copy.deepcopy(draw(st.sampled_from(SHAPED)))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        positions = _positions(body)
        if not positions:
            break
        *path, key = draw(st.sampled_from(positions))
        parent = body
        for step in path:
            parent = parent[step]
        if draw(st.booleans()):
            parent[key] = draw(VALUES)
        else:
            del parent[key]
    return body


def _encode(body: Any) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body).encode()


def _check(body: bytes, secret: str | None = None) -> Accepted | Rejected:
    platform = django_settings.WHATSAPP_APP_SECRET
    return check_webhook(
        body=body,
        signature=payloads.sign(body, secret or platform),
        secrets=Secrets(platform=platform, own={PNID_B: OWN_SECRET}),
        limit=LIMIT,
    )


def _assert_clean(verdict: Accepted | Rejected, body: bytes) -> None:
    if isinstance(verdict, Rejected):
        assert 400 <= verdict.status < 500
        assert json.loads(verdict.json())["error"]["code"]
        return
    assert all(parsing.ID_RE.match(i) for i in [*verdict.phone_number_ids, *verdict.waba_ids])
    for change in parsing.load_body(parsing.loads(body)):  # the worker's reading never raises
        assert isinstance(change, parsing.Change)


# Thousands of signed bodies, the same ones on every run (derandomized: a CI failure reproduces locally).
# FUZZ_EXAMPLES scales the signed-body tests for a quick local run.
FAST = hypothesis_settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "2000")), deadline=None, database=None, derandomize=True
)
WITH_DB = hypothesis_settings(
    max_examples=80,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FAST
@given(
    st.one_of(
        VALUES,
        st.fixed_dictionaries({"object": st.just("whatsapp_business_account"), "entry": VALUES}),
        st.binary(max_size=64),
    )
)
def test_signed_arbitrary_json_is_accepted_or_refused_cleanly(body: Any) -> None:
    raw = _encode(body)
    _assert_clean(_check(raw), raw)


@FAST
@given(mutated(), st.booleans())
def test_whatsapp_bodies_with_a_wrong_value_anywhere_never_break_the_check_or_the_parser(
    body: dict[str, Any], own_secret: bool
) -> None:
    raw = _encode(body)
    verdict = _check(raw, OWN_SECRET if own_secret else None)
    _assert_clean(verdict, raw)
    if own_secret and isinstance(verdict, Accepted):
        # A number's own secret is never worth more than that number.
        assert verdict.phone_number_ids == [PNID_B] and verdict.waba_ids == []


def test_deep_nesting_is_refused_not_a_recursion_error() -> None:
    nested: list[Any] = []
    for _ in range(parsing.MAX_DEPTH + 5):
        nested = [nested]
    too_deep = json.dumps(
        {"object": "whatsapp_business_account", "entry": [{"changes": [{"value": nested}]}]}
    )
    for body in (b"[" * 100_000 + b"]" * 100_000, too_deep.encode()):
        verdict = _check(body)
        assert isinstance(verdict, Rejected) and verdict.status == 400


@WITH_DB
@given(body=mutated())
def test_processing_a_stored_odd_body_never_fails_or_retries(body: dict[str, Any], channel_a: Any) -> None:
    from whatsapp.services import process_webhook_events, record_webhook_events

    raw = _encode(body)
    verdict = _check(raw)
    if not isinstance(verdict, Accepted):
        return
    [event_id] = record_webhook_events(accepted=[verdict])

    outcome = process_webhook_events(event_ids=[event_id])

    event = WebhookEvent.objects.get(pk=event_id)
    assert outcome.failed == [], event.error
    assert (event.status, event.attempts) in (("processed", 1), ("unrouted", 1)), event.error


_wamids = itertools.count()


@WITH_DB
@given(body=mutated())
def test_an_odd_event_run_by_the_actor_finishes_and_the_next_event_is_processed(
    body: dict[str, Any], channel_a: Any, tenant_a: Any
) -> None:
    """Through the real actor (the broker's messages, run in order): a stored odd event neither raises
    (no retry loop) nor blocks the normal event queued behind it."""
    from whatsapp.actors import enqueue_webhook_events
    from whatsapp.services import record_webhook_events
    from whatsapp.testing import queued_jobs, run_jobs

    odd = _check(_encode(body))
    assume(isinstance(odd, Accepted))
    wamid = f"wamid.after-odd.{next(_wamids)}"
    normal = _check(
        payloads.encode(
            payloads.text_event(phone_number_id=PNID_A, wa_id="16505550100", text="hi", wamid=wamid)
        )
    )
    assert isinstance(normal, Accepted)
    [odd_id] = record_webhook_events(accepted=[odd])
    assert enqueue_webhook_events(event_ids=[odd_id])
    [normal_id] = record_webhook_events(accepted=[normal])
    assert enqueue_webhook_events(event_ids=[normal_id])

    ran = run_jobs(max_jobs=50)  # an actor that raised would fail here: the job does not finish

    assert "process_webhook_events" in ran
    assert queued_jobs() == []  # nothing left re-queuing itself: the odd event does not loop
    assert WebhookEvent.objects.get(pk=odd_id).status in ("processed", "unrouted")
    assert WebhookEvent.objects.get(pk=normal_id).status == "processed"
    with schema_context(tenant_a.schema_name):
        assert Message.objects.filter(wamid=wamid).exists()


@WITH_DB
@given(body=st.one_of(mutated(), VALUES))
def test_the_view_never_answers_5xx_to_a_signed_odd_body(body: Any, public_client: Any) -> None:
    response = post_webhook(public_client, _encode(body))
    assert response.status_code in (200, 400), response.content


def test_a_stored_body_that_is_not_a_webhook_fails_once_and_is_not_retried(channel_a):
    from whatsapp.services import process_webhook_events, record_webhook_events

    # Only rows stored before bodies were checked can look like this.
    ids = record_webhook_events(
        accepted=[
            Accepted(body=b"[1, 2", phone_number_ids=[PNID_A]),
            Accepted(body=b"{}", phone_number_ids=[]),
        ]
    )

    process_webhook_events(event_ids=ids)

    events = WebhookEvent.objects.filter(pk__in=ids).order_by("pk")
    assert [(e.status, e.attempts) for e in events] == [("failed", 1), ("failed", 1)]


def test_a_nul_in_a_message_is_dropped_and_the_message_stored(public_client, channel_a, tenant_a):
    from whatsapp.testing import run_jobs

    body = payloads.text_event(
        phone_number_id=PNID_A, wa_id="16505551234", text="nul\x00here \ud800", name="A\x00"
    )
    assert post_webhook(public_client, payloads.encode(body)).status_code == 200
    run_jobs()

    assert WebhookEvent.objects.get().status == "processed"
    with schema_context(tenant_a.schema_name):
        message = Message.objects.get()
        assert message.text == "nulhere ?"
        assert message.conversation.contact.name == "A"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"object": "whatsapp_business_account", "entry": "x"}, "invalid_payload"),
        ({"object": "whatsapp_business_account", "entry": [{"changes": {}}]}, "invalid_payload"),
        ({"object": "whatsapp_business_account", "entry": [{"changes": [{"value": []}]}]}, "invalid_payload"),
        (
            {"object": "whatsapp_business_account", "entry": [{"changes": [{"value": {"metadata": "x"}}]}]},
            "invalid_payload",
        ),
        (payloads.text_event(phone_number_id="1065\x00", wa_id="1", text="x"), "invalid_payload"),
        (payloads.text_event(phone_number_id="../../me", wa_id="1", text="x"), "invalid_payload"),
        ({"object": "page", "entry": []}, "not_whatsapp"),
        ([1, 2], "not_whatsapp"),
        (b'{"object": NaN}', "invalid_json"),
        (b'{"a": ' + b"1" * 5000 + b"}", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
    ],
)
def test_a_body_that_is_not_a_webhook_gets_a_400_with_its_reason(body: Any, code: str) -> None:
    verdict = _check(_encode(body))
    assert isinstance(verdict, Rejected)
    assert (verdict.status, verdict.code) == (400, code)


def test_an_unverified_odd_body_learns_only_invalid_signature() -> None:
    verdict = _check(b"{not json", secret="someone-elses")
    assert isinstance(verdict, Rejected) and verdict.code == "invalid_signature"


def test_a_signature_header_with_odd_characters_is_refused_not_a_crash() -> None:
    body = payloads.encode(fixture("text"))
    for header in ("sha256=é" + "0" * 63, "sha256=\x00", "sha256=" + "Z" * 64):
        verdict = check_webhook(body=body, signature=header, secrets=Secrets(platform="x"), limit=LIMIT)
        assert isinstance(verdict, Rejected) and verdict.code == "invalid_signature"
