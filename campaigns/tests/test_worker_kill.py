"""A worker killed with SIGKILL in the middle of a campaign (issue 17).

The live stack of whatsapp/tests/test_live_processes (uvicorn, `dramatiq config.worker` with the bulk
queue, the Graph API sandbox). A campaign is created and started in a separate process (its rows and
the dispatcher's job are committed and go to Redis). When about a third of the recipients have reached
the sandbox the worker's whole process group gets SIGKILL (a dispatcher chunk or sends may be in flight),
a fresh worker takes over, and the scheduler's campaign tick and send sweeper run until the campaign is
complete. Then: no recipient got the template twice, and every recipient is sent (with the wamid the
sandbox gave that very recipient) or failed with a reason shown.

CAMPAIGN_KILL_RECIPIENTS sets the audience size (default 600).
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

from conftest import wait_until
from whatsapp.sandbox import Sandbox
from whatsapp.tests.test_live_processes import (
    PNID,
    ROOT,
    Stack,
    stack,  # noqa: F401 - the live stack fixture
)

RECIPIENTS = int(os.environ.get("CAMPAIGN_KILL_RECIPIENTS", "600"))
CLAIM_TIMEOUT = "10"
pytestmark = pytest.mark.django_db

_DJANGO = (
    "import os, sys, django\n"
    "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings')\n"
    "django.setup()\n"
    "import tenants.jobs\n"
    "from django_tenants.utils import schema_context\n"
)
SETUP = _DJANGO + (
    "from campaigns import services\n"
    "from conversations.models import Channel\n"
    "from crm.models import Contact, Tag\n"
    "from whatsapp.models import MessageTemplate\n"
    "schema, count, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3]\n"
    "with schema_context(schema):\n"
    "    channel = Channel.objects.get()\n"
    "    MessageTemplate.objects.get_or_create(waba_id=channel.waba_id, name='kill_note', language='en',\n"
    "        defaults={'status': 'APPROVED', 'category': 'UTILITY',\n"
    "                  'components': [{'type': 'BODY', 'text': 'Hello {{1}}'}]})\n"
    "    label = Tag.objects.create(name=tag)\n"
    "    contacts = Contact.objects.bulk_create(\n"
    "        [Contact(phone=f'+1444{n:07d}', name=f'{tag} {n}') for n in range(count)])\n"
    "    label.contacts.add(*contacts)\n"
    "    campaign = services.create_campaign(\n"
    "        name=tag, channel=channel, template='kill_note', language='en',\n"
    "        audience={'tags': [tag]}, parameters={'body': ['{{contact.name}}']})\n"
    "    services.start_campaign(campaign=campaign)\n"
    "    print(campaign.pk)\n"
)
# What the scheduler runs: the campaign tick (progress, and a dispatcher for what is still pending) and
# the send sweeper (jobs lost with the killed worker).
TICK = _DJANGO + (
    "from campaigns.actors import campaigns_tick_for_tenant\n"
    "from whatsapp.actors import requeue_stuck_sends\n"
    "requeue_stuck_sends.fn()\n"
    "with schema_context(sys.argv[1]):\n"
    "    campaigns_tick_for_tenant.fn()\n"
)


def _python(live: Stack, script: str, *args: str, name: str) -> subprocess.Popen[bytes]:
    log = (live.logs / f"{name}.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-c", script, *args], cwd=ROOT, env=live.env, stdout=log, stderr=subprocess.STDOUT
    )


def _start_worker(live: Stack) -> None:
    live.start(
        "worker",
        [
            sys.executable,
            "-m",
            "dramatiq",
            "config.worker",
            "--processes",
            "2",
            "--threads",
            "2",
            "--queues",
            "inbound",
            "outbound",
            "default",
            "bulk",
        ],
    )


def _received(sandbox: Sandbox, tag: str) -> list[dict[str, Any]]:
    out = []
    for sent in sandbox.sent(PNID):
        template = sent["body"].get("template") or {}
        params = (template.get("components") or [{}])[0].get("parameters") or [{}]
        if template.get("name") == "kill_note" and str(params[0].get("text", "")).startswith(tag):
            out.append(sent)
    return out


def test_a_worker_killed_mid_campaign_sends_no_one_twice_and_loses_no_one(
    stack: Stack,  # noqa: F811
    _sandbox_server: Sandbox,
) -> None:
    from campaigns.models import Campaign, Recipient
    from conversations.models import Message

    sandbox = _sandbox_server
    stack.env["WHATSAPP_SEND_CLAIM_TIMEOUT"] = CLAIM_TIMEOUT
    stack.stop("worker")
    _start_worker(stack)
    tag = f"kill{uuid.uuid4().hex[:8]}"
    setup = _python(stack, SETUP, stack.tenant.schema_name, str(RECIPIENTS), tag, name="setup")
    assert setup.wait(timeout=300) == 0, stack.log("setup")
    wait_until(
        lambda: len(_received(sandbox, tag)) >= RECIPIENTS // 3,
        what=f"a third of the campaign to be sent\n{stack.log('worker')}",
        timeout=300,
    )
    process = stack.processes.pop("worker")
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    killed_at = len(_received(sandbox, tag))
    _start_worker(stack)

    def campaign() -> Campaign:
        with stack.orm():
            return Campaign.objects.get(name=tag)

    last_tick = 0.0

    def settled() -> bool:
        nonlocal last_tick
        if campaign().status == Campaign.Status.COMPLETED:
            return True
        if time.monotonic() - last_tick > 3:
            tick = _python(stack, TICK, stack.tenant.schema_name, name="tick")
            assert tick.wait(timeout=120) == 0, stack.log("tick")
            last_tick = time.monotonic()
        return False

    wait_until(settled, what=f"the campaign to complete\n{stack.log('worker')}", timeout=600)

    received = _received(sandbox, tag)
    times = collections.Counter(sent["body"]["to"] for sent in received)
    assert [to for to, n in times.items() if n > 1] == []
    wamid_to = {sent["wamid"]: sent["body"]["to"] for sent in received}
    with stack.orm():
        recipients = list(Recipient.objects.filter(campaign__name=tag).select_related("contact", "message"))
        assert len(recipients) == RECIPIENTS
        messages = Message.objects.filter(
            idempotency_key__startswith=f"campaign:{recipients[0].campaign_id}:"
        )
        assert messages.count() == RECIPIENTS  # one message per recipient, never two
        sent = [r for r in recipients if r.status == Recipient.Status.SENT]
        failed = [r for r in recipients if r.status == Recipient.Status.FAILED]
        assert len(sent) + len(failed) == RECIPIENTS, collections.Counter(r.status for r in recipients)
        for r in sent:
            assert r.message is not None and r.message.wamid
            assert wamid_to.get(r.message.wamid, "").lstrip("+") == r.contact.phone.lstrip("+"), r.pk
        for r in failed:
            assert r.error_title, r.pk  # shown on the campaign page and in the export
    reasons = collections.Counter(r.error_title for r in failed)
    print(
        f"campaign {RECIPIENTS}: {killed_at} sent before the kill, {len(sent)} sent, "
        + f"{len(failed)} failed {dict(reasons)}"
    )
