"""Media in the thread, in Debian's chromium: an inbound image opens inline (and larger), an outbound PDF
downloads with its bytes, a failed download says why and "Retry download" works. And the customer's blue
ticks and "typing…" come from what the agent does on the page, never from opening a URL."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import override_settings
from django.utils import timezone
from playwright.sync_api import expect

from conftest import wait_until
from conversations.models import Conversation, MediaFile, Message
from conversations.tests.browser.conftest import PNID, Live, sign_in
from crm.models import Contact
from onboarding.management.commands.seed_demo import demo_pdf, demo_png
from whatsapp import payloads

pytestmark = pytest.mark.browser

_numbers = itertools.count(1)
PNG = demo_png(120, 80)
PDF = demo_pdf("Price list 2026")


@pytest.fixture(scope="module", autouse=True)
def _media_root(tmp_path_factory: Any) -> Iterator[Path]:
    # The live server runs in this process: its storage follows this (setting_changed resets it).
    root = tmp_path_factory.mktemp("media")
    with override_settings(MEDIA_ROOT=root):
        yield root


def new_wa_id() -> str:
    return f"4917{next(_numbers):09d}"


def media_id() -> str:
    return f"{7 * 10**15 + next(_numbers)}"


def inbound_image(live: Live, wa_id: str, name: str, *, media: str, sha256: str = "") -> str:
    wamid = payloads.new_wamid()
    image = {"id": media, "mime_type": "image/png", "sha256": sha256, "caption": "The parcel as it arrived"}
    live.post_webhook(
        payloads.event(
            phone_number_id=PNID,
            contacts=[payloads.contact(wa_id, name)],
            messages=[payloads.message(wa_id=wa_id, type="image", content=image, wamid=wamid)],
        )
    )
    return wamid


def stored_message(live: Live, wamid: str) -> Message:
    def find() -> Message | None:
        with live.orm():
            return Message.objects.select_related("conversation").filter(wamid=wamid).first()

    return wait_until(find, what=f"message {wamid} to be stored")


def open_thread(page: Any, conversation_id: int) -> None:
    page.locator(f"#conv-{conversation_id} .row-link").click()
    expect(page.locator(f'#thread[data-conversation="{conversation_id}"]')).to_be_visible()


def wait_for_image(page: Any, selector: str) -> int:
    """The image's natural width once the browser has decoded it (0 would be a broken image)."""
    image = page.locator(selector)
    expect(image).to_be_visible()
    for _ in range(600):
        width = int(image.evaluate("i => (i.complete ? i.naturalWidth : 0)"))
        if width:
            return width
        page.wait_for_timeout(50)
    raise AssertionError(f"{selector} never loaded")


def test_the_media_tests_use_the_test_database(db):
    """Also what makes pytest-django set the test database up when only this module runs."""
    from tenants.db import connection

    assert connection.settings_dict["NAME"].startswith("test_")


def test_an_inbound_image_opens_inline_and_larger_and_the_receipt_waits_for_the_page(page, live):
    media = media_id()
    live.sandbox.add_media(PNG, "image/png", media_id=media)
    wamid = inbound_image(
        live, new_wa_id(), "Ines Ferreira", media=media, sha256=hashlib.sha256(PNG).hexdigest()
    )
    message = stored_message(live, wamid)
    with live.orm():
        wait_until(
            lambda: MediaFile.objects.filter(message=message, status="ready").exists(), what="the download"
        )
    # Nobody has looked yet: no blue ticks for the customer.
    assert [r for r in live.sandbox.state.read_receipts if r["message_id"] == wamid] == []

    sign_in(page, next_url="/inbox/?tab=all")
    open_thread(page, message.conversation_id)
    assert wait_for_image(page, f"#msg-{message.pk} img.image") == 120

    page.locator(f"#msg-{message.pk} a[data-enlarge]").click()
    expect(page.locator("dialog.lightbox")).to_be_visible()
    assert wait_for_image(page, "dialog.lightbox img") == 120
    page.keyboard.press("Escape")
    expect(page.locator("dialog.lightbox")).to_be_hidden()

    # The thread was shown on a visible page: one read receipt, and the list's unread count cleared.
    wait_until(
        lambda: [r for r in live.sandbox.state.read_receipts if r["message_id"] == wamid], what="the receipt"
    )
    with live.orm():
        wait_until(
            lambda: Conversation.objects.get(pk=message.conversation_id).unread_count == 0,
            what="unread cleared",
        )


def test_an_outbound_pdf_downloads_with_its_bytes(page, live):
    wa_id = new_wa_id()
    now = timezone.now()
    with live.orm():
        contact = Contact.objects.create(
            name="Oskar Lind", phone=f"+{wa_id}", wa_id=wa_id, last_inbound_at=now
        )
        conversation = Conversation.objects.create(
            contact=contact, channel=live.channel, last_message_at=now, last_inbound_at=now
        )
        message = Message.objects.create(
            conversation=conversation,
            direction=Message.Direction.OUTBOUND,
            type=Message.Type.DOCUMENT,
            text="price-list-2026.pdf",
            status=Message.Status.DELIVERED,
            wamid=payloads.new_wamid(),
            timestamp=now,
        )
        path = default_storage.save(
            f"whatsapp/{live.tenant.schema_name}/document/test/price-list.pdf", ContentFile(PDF)
        )
        MediaFile.objects.create(
            channel=live.channel,
            message=message,
            direction=MediaFile.Direction.OUTBOUND,
            kind="document",
            media_id="1234567890",
            file=path,
            filename="price-list-2026.pdf",
            mime_type="application/pdf",
            size=len(PDF),
            status=MediaFile.Status.READY,
        )
    sign_in(page, next_url="/inbox/?tab=all")
    open_thread(page, conversation.pk)
    link = page.locator(f"#msg-{message.pk} a.media-download")
    expect(link).to_have_text("price-list-2026.pdf")
    expect(page.locator(f"#msg-{message.pk}")).to_contain_text(f"{len(PDF)}\xa0bytes")
    with page.expect_download() as info:
        link.click()
    download = info.value
    assert download.suggested_filename == "price-list-2026.pdf"
    assert Path(download.path()).read_bytes() == PDF


def test_a_failed_download_says_why_and_retry_download_brings_the_image(page, live):
    media = media_id()  # Meta (the sandbox) does not know it yet: the download fails
    wamid = inbound_image(live, new_wa_id(), "Petra Novak", media=media)
    message = stored_message(live, wamid)
    with live.orm():
        wait_until(
            lambda: MediaFile.objects.filter(message=message, status="failed").exists(), what="the failure"
        )
    sign_in(page, next_url="/inbox/?tab=all")
    open_thread(page, message.conversation_id)
    failed = page.locator(f"#msg-{message.pk} .media-failed")
    expect(failed).to_contain_text("Could not download the image")
    expect(failed).to_contain_text("100")  # Graph's error code, as the reason

    live.sandbox.add_media(PNG, "image/png", media_id=media)
    failed.get_by_role("button", name="Retry download").click()
    # The download job finishes and the thread hears about it: the image replaces the failure.
    assert wait_for_image(page, f"#msg-{message.pk} img.image") == 120
    expect(page.locator(f"#msg-{message.pk} .media-failed")).to_have_count(0)


def test_typing_a_reply_shows_typing_to_the_customer_once_per_interval(page, live):
    wa_id = new_wa_id()
    live.inbound(wa_id, "Do you have it in blue?", name="Rosa Diaz")
    with live.orm():
        message = wait_until(
            lambda: Message.objects.filter(conversation__contact__wa_id=wa_id).first(), what="the message"
        )
    sign_in(page, next_url="/inbox/?tab=all")
    open_thread(page, message.conversation_id)
    page.locator("#composer-text").press_sequentially("Yes, in every size", delay=20)

    def typing() -> list[dict[str, Any]]:
        return [
            r
            for r in live.sandbox.state.read_receipts
            if r["message_id"] == message.wamid and "typing_indicator" in r
        ]

    wait_until(typing, what="the typing indicator")
    page.locator("#composer-text").press_sequentially(" and colour", delay=20)
    page.wait_for_timeout(300)
    assert len(typing()) == 1
    assert typing()[0]["typing_indicator"] == {"type": "text"}
