"""A worker killed with SIGKILL in the middle of a burst of outgoing messages (issue 14, item 9).

The live stack of test_live_processes (uvicorn, `dramatiq config.worker`, the Graph API sandbox) sends a
burst queued through the real reply path (`send_text_message`, one committed transaction and one
enqueued job per message, in a separate process so the jobs go to Redis). When about a third has reached
the sandbox the worker's whole process group gets SIGKILL (no clean shutdown, requests may be in
flight), a fresh worker takes over, and the requeue sweeper the scheduler runs every minute is run until
nothing is left queued. Then: no text reached the sandbox twice, and every message is either sent (its
wamid is the one the sandbox gave that very text) or failed with a reason and accepted by Retry.

WORKER_KILL_BURST sets the burst size (default 2000) for quicker local runs.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
import uuid
from typing import Any

import pytest
from django.db import transaction

from conftest import wait_until
from whatsapp.delivery import INTERRUPTED_TITLE
from whatsapp.sandbox import Sandbox
from whatsapp.tests.test_live_processes import (
    PNID,
    ROOT,
    Stack,
    stack,  # noqa: F401 - the live stack fixture
)

BURST = int(os.environ.get("WORKER_KILL_BURST", "2000"))
# Seconds after which the fresh worker and the sweeper judge an unfinished attempt abandoned (120 in
# production): short, so the test does not wait two minutes, and far above a sandbox send.
CLAIM_TIMEOUT = "10"
pytestmark = pytest.mark.django_db

_DJANGO = (
    "import os, sys, django\n"
    "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings')\n"
    "django.setup()\n"
    "import tenants.jobs\n"
    "from django_tenants.utils import schema_context\n"
)
# The burst, through the reply path every agent reply and bot message takes; each commit enqueues a job.
QUEUE_BURST = _DJANGO + (
    "from conversations.models import Conversation\n"
    "from conversations.services import send_text_message\n"
    "schema, conversation_id, count, prefix = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]\n"
    "with schema_context(schema):\n"
    "    conversation = Conversation.objects.get(pk=conversation_id)\n"
    "    for number in range(count):\n"
    "        send_text_message(conversation=conversation, text=f'{prefix} #{number:05d}')\n"
)
# What the scheduler's `whatsapp_requeue_sends` job runs (the live stack has no scheduler).
REQUEUE = _DJANGO + "from whatsapp.actors import requeue_stuck_sends\nrequeue_stuck_sends.fn()\n"


def _python(live: Stack, script: str, *args: str, name: str) -> subprocess.Popen[bytes]:
    log = (live.logs / f"{name}.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-c", script, *args], cwd=ROOT, env=live.env, stdout=log, stderr=subprocess.STDOUT
    )


def _received(sandbox: Sandbox, prefix: str) -> list[dict[str, Any]]:
    return [
        sent
        for sent in sandbox.sent(PNID)
        if str(sent["body"].get("text", {}).get("body", "")).startswith(prefix)
    ]


def _kill_worker(live: Stack) -> None:
    """SIGKILL to the worker's process group: the CLI process and every forked worker process at once."""
    process = live.processes.pop("worker")
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def test_a_worker_killed_mid_burst_sends_nothing_twice_and_loses_nothing(
    stack: Stack,  # noqa: F811
    _sandbox_server: Sandbox,
) -> None:
    from conversations.models import Message
    from conversations.services import retry_message

    sandbox = _sandbox_server
    stack.env["WHATSAPP_SEND_CLAIM_TIMEOUT"] = CLAIM_TIMEOUT
    stack.inbound("15553330000", "open the window for the burst")
    conversation = stack.stored("open the window for the burst").conversation
    prefix = f"burst {uuid.uuid4().hex[:8]}"
    burst = _python(
        stack,
        QUEUE_BURST,
        stack.tenant.schema_name,
        str(conversation.pk),
        str(BURST),
        prefix,
        name="burst",
    )
    try:
        wait_until(
            lambda: len(_received(sandbox, prefix)) >= BURST // 3,
            what=f"a third of the burst to be sent\n{stack.log('worker')}\n{stack.log('burst')}",
            timeout=300,
        )
        _kill_worker(stack)
        killed_at = len(_received(sandbox, prefix))
        stack.start_worker()
        assert burst.wait(timeout=600) == 0, stack.log("burst")
    finally:
        if burst.poll() is None:
            burst.kill()
            burst.wait()

    def rows() -> Any:
        return Message.objects.filter(
            conversation_id=conversation.pk, direction=Message.Direction.OUTBOUND, text__startswith=prefix
        )

    last_sweep = 0.0

    def settled() -> bool:
        nonlocal last_sweep
        with stack.orm():
            if not rows().filter(status=Message.Status.QUEUED).exists():
                return True
        if time.monotonic() - last_sweep > 5:
            # Jobs lost with the killed worker and abandoned attempts come back through the sweeper.
            assert _python(stack, REQUEUE, name="sweeper").wait(timeout=120) == 0, stack.log("sweeper")
            last_sweep = time.monotonic()
        return False

    wait_until(settled, what=f"every message to be sent or failed\n{stack.log('worker')}", timeout=600)

    received = _received(sandbox, prefix)
    times = collections.Counter(sent["body"]["text"]["body"] for sent in received)
    assert [text for text, count in times.items() if count > 1] == []
    text_of_wamid = {sent["wamid"]: sent["body"]["text"]["body"] for sent in received}
    with stack.orm():
        messages = list(rows().order_by("pk"))
        assert len(messages) == BURST
        assert sorted(m.text for m in messages) == [f"{prefix} #{n:05d}" for n in range(BURST)]
        sent = [m for m in messages if m.status != Message.Status.FAILED]
        failed = [m for m in messages if m.status == Message.Status.FAILED]
        for message in sent:
            assert message.status == Message.Status.SENT, (message.pk, message.status)
            assert text_of_wamid.get(message.wamid) == message.text, (message.pk, message.wamid)
            assert message.send_started_at is None
        for message in failed:
            assert message.error_title, message.pk  # the reason the inbox shows next to Retry
            assert not message.wamid and message.send_started_at is None
            if message.text in times:  # killed after the request went out: not sent again, says so
                assert message.error_title == INTERRUPTED_TITLE, (message.pk, message.error_title)
            # The inbox's Retry accepts it (and queues the same row again); undone, nothing is sent.
            with transaction.atomic():
                retried = retry_message(message=message, user=None)
                assert (retried.pk, retried.status) == (message.pk, Message.Status.QUEUED)
                transaction.set_rollback(True)
    # Every text the sandbox got is one of the burst's rows: sent, or failed as interrupted.
    assert set(times) <= {m.text for m in messages}
    reasons = collections.Counter(m.error_title for m in failed)
    print(
        f"burst {BURST}: {killed_at} sent before the kill, {len(sent)} sent, "
        f"{len(failed)} failed {dict(reasons)}"
    )
