"""The sandbox's status webhooks under load, as Meta sends them: several statuses due together in one body
(`--status-batch`), from several threads (`--status-posters`); one status per webhook by default."""

from __future__ import annotations

import json
import time
from typing import Any

from whatsapp import parsing
from whatsapp.sandbox import Sandbox


def _send(sandbox: Sandbox, pnid: str, to: str) -> str:
    status, answer = sandbox.accept_send(pnid, {"messaging_product": "whatsapp", "to": to, "type": "text"})
    assert status == 200
    return str(answer["messages"][0]["id"])


def _statuses(bodies: list[bytes]) -> list[tuple[str, str, str]]:
    """(phone_number_id, wamid, status) of every status in the bodies, in order."""
    found = []
    for body in bodies:
        data: dict[str, Any] = json.loads(body)
        for entry in data["entry"]:
            for change in entry["changes"]:
                pnid = change["value"]["metadata"]["phone_number_id"]
                found += [(pnid, s["id"], s["status"]) for s in change["value"]["statuses"]]
    return found


def _collect(sandbox: Sandbox, statuses: int, timeout: float = 10.0) -> list[bytes]:
    """The webhook bodies the sandbox posted (to its outbox: no webhook URL) until they carry `statuses`."""
    bodies: list[bytes] = []
    deadline = time.monotonic() + timeout
    while len(_statuses(bodies)) < statuses and time.monotonic() < deadline:
        bodies += sandbox.take_outbox()
        time.sleep(0.02)
    return bodies


def test_by_default_each_status_is_its_own_webhook():
    sandbox = Sandbox(status_delay=0.0).start()
    try:
        wamid = _send(sandbox, "111", "15550001")
        bodies = sandbox.wait_for_outbox(3)
    finally:
        sandbox.stop()
    assert len(bodies) == 3
    assert _statuses(bodies) == [("111", wamid, "sent"), ("111", wamid, "delivered"), ("111", wamid, "read")]


def test_statuses_due_together_share_a_body_one_change_per_number_in_order():
    sandbox = Sandbox(status_delay=0.2, status_batch=50).start()
    try:
        first = _send(sandbox, "111", "15550001")
        second = _send(sandbox, "222", "15550002")
        bodies = _collect(sandbox, 6)
    finally:
        sandbox.stop()
    statuses = _statuses(bodies)
    assert len(statuses) == 6 and len(bodies) < 6  # batched
    for wamid, pnid in ((first, "111"), (second, "222")):
        assert [s for p, w, s in statuses if w == wamid and p == pnid] == ["sent", "delivered", "read"]
    # What the app parses: every status of every change, with its number.
    changes = [change for body in bodies for change in parsing.load_body(parsing.loads(body))]
    assert sum(len(change.statuses) for change in changes) == 6


def test_a_batch_never_exceeds_its_size():
    sandbox = Sandbox(status_delay=0.2, status_batch=2).start()
    try:
        for number in range(3):
            _send(sandbox, "111", f"1555000{number}")
        bodies = _collect(sandbox, 9)
    finally:
        sandbox.stop()
    assert all(len(_statuses([body])) <= 2 for body in bodies)
    assert len(_statuses(bodies)) == 9
