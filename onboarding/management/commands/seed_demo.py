"""The demo tenant: agents, a team, tags, contacts, a sandbox WhatsApp number, and conversations with
messages of every kind. Idempotent: everything is keyed (slug, email, phone, wamid), so a second run
changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import io
import math
import struct
import wave
import zlib
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone
from django_tenants.utils import schema_context

from onboarding.services import onboard_tenant, tenant_url
from tenants.models import NumberRoute, Tenant

DEMO_SLUG = "demo"
SEED_ENVIRONMENTS = ("development", "test")
DEMO_OWNER = "owner@demo.test"
DEMO_PASSWORD = "Demo-Password-2026"
PLATFORM_ADMIN = "admin@platform.test"
# The Procfile's sandbox knows this number as one of this account's (`--number`) and lists the demo
# templates for the account (`--templates-for`).
SANDBOX_PHONE_NUMBER_ID = "100000000000001"
SANDBOX_WABA_ID = "200000000000001"
SANDBOX_TOKEN = "sandbox-token"  # the sandbox lets any token read the demo number

AGENTS = [
    ("alice@demo.test", "Alice Admin", "admin"),
    ("sam@demo.test", "Sam Supervisor", "supervisor"),
    ("bob@demo.test", "Bob Agent", "agent"),
]
CONTACTS = [
    ("+15551230001", "Maria Lopez", ["vip"]),
    ("+447700900002", "James Smith", ["lead"]),
    ("+4915123000003", "Jonas Weber", []),
    ("+5511987650004", "Ana Souza", ["vip", "lead"]),
    ("+919812300005", "Priya Patel", []),
    ("+61412300006", "Liam Brown", ["support"]),
]


BOT_RULES = [
    ("opening hours", "We answer Monday to Friday, 9:00 to 18:00."),
    ("price", "Our prices are at https://example.com/prices. Ask us about bulk discounts!"),
]


SAVED_REPLIES = [
    ("thanks", "Thank you", "Thank you for your message! Is there anything else I can help you with?"),
    ("shipping", "Shipping times", "Orders ship within 1-2 business days; delivery takes 3-5 days."),
]


def demo_messages(now: Any) -> list[dict[str, Any]]:
    """(contact index, direction, type, text, payload, status): one of every kind WhatsApp delivers."""
    img = {"id": "demo-media-1", "mime_type": "image/jpeg", "sha256": "", "caption": "Our shop front"}
    rows: list[tuple[int, str, str, str, dict[str, Any], str]] = [
        (0, "in", "text", "Hi! Is the blue jacket still available in M?", {}, "received"),
        (0, "out", "text", "Hello Maria, yes it is. Shall I reserve one for you?", {}, "read"),
        (0, "in", "image", "Our shop front", {"image": img}, "received"),
        (
            0,
            "in",
            "reaction",
            "👍",
            {"reaction": {"message_id": "wamid.demo.0.1", "emoji": "👍"}},
            "received",
        ),
        (
            1,
            "in",
            "document",
            "invoice-2041.pdf",
            {
                "document": {
                    "id": "demo-media-2",
                    "filename": "invoice-2041.pdf",
                    "mime_type": "application/pdf",
                }
            },
            "received",
        ),
        (
            1,
            "out",
            "template",
            "order_update: Your order 2041 has shipped",
            {"template": {"name": "order_update", "language": {"code": "en"}}},
            "delivered",
        ),
        (
            1,
            "in",
            "button",
            "Track my order",
            {"button": {"text": "Track my order", "payload": "TRACK"}},
            "received",
        ),
        (
            2,
            "in",
            "location",
            "Alexanderplatz, Berlin",
            {"location": {"latitude": 52.5219, "longitude": 13.4132, "name": "Alexanderplatz"}},
            "received",
        ),
        (
            2,
            "in",
            "audio",
            "Voice message",
            {"audio": {"id": "demo-media-3", "mime_type": "audio/ogg", "voice": True}},
            "received",
        ),
        (2, "out", "text", "Thanks Jonas, we will call you back today.", {}, "failed"),
        (
            3,
            "in",
            "contacts",
            "Contact card: Carlos Souza",
            {
                "contacts": [
                    {"name": {"formatted_name": "Carlos Souza"}, "phones": [{"phone": "+5511999990000"}]}
                ]
            },
            "received",
        ),
        (
            3,
            "in",
            "interactive",
            "Pricing",
            {"interactive": {"type": "list_reply", "list_reply": {"id": "pricing", "title": "Pricing"}}},
            "received",
        ),
        (
            3,
            "in",
            "interactive",
            "Yes, please",
            {"interactive": {"type": "button_reply", "button_reply": {"id": "yes", "title": "Yes, please"}}},
            "received",
        ),
        (
            4,
            "in",
            "video",
            "Unboxing",
            {"video": {"id": "demo-media-4", "mime_type": "video/mp4", "caption": "Unboxing"}},
            "received",
        ),
        (
            4,
            "in",
            "sticker",
            "Sticker",
            {"sticker": {"id": "demo-media-5", "mime_type": "image/webp", "animated": False}},
            "received",
        ),
        (
            4,
            "in",
            "order",
            "Order: 2 items",
            {
                "order": {
                    "catalog_id": "demo",
                    "product_items": [
                        {"product_retailer_id": "sku-1", "quantity": 2, "item_price": 19.9, "currency": "EUR"}
                    ],
                }
            },
            "received",
        ),
        (
            5,
            "in",
            "system",
            "Liam changed their phone number",
            {"system": {"type": "user_changed_number", "body": "Liam changed their phone number"}},
            "received",
        ),
        (
            5,
            "in",
            "unsupported",
            "Unsupported message",
            {"errors": [{"code": 131051, "title": "Message type unknown"}]},
            "received",
        ),
        (5, "out", "note", "Customer asked for a refund last week; check with billing.", {}, "sent"),
        (
            1,
            "out",
            "document",
            "price-list-2026.pdf",
            {"document": {"id": "demo-media-6", "filename": "price-list-2026.pdf", "caption": "Our prices"}},
            "read",
        ),
    ]
    messages = []
    for index, (contact, direction, kind, text, payload, status) in enumerate(rows):
        messages.append(
            {
                "contact": contact,
                "direction": direction,
                "type": kind,
                "text": text,
                "payload": payload,
                "status": status,
                "wamid": f"wamid.demo.{contact}.{index}",
                "timestamp": now - timedelta(minutes=(len(rows) - index) * 7),
            }
        )
    return messages


# -- demo media: small real files made here (no network, no binary fixtures), so every one opens ----------


def demo_png(width: int = 240, height: int = 160) -> bytes:
    """A shop front: sky, a striped awning, a door."""
    rows = []
    for y in range(height):
        row = bytearray([0])  # filter: none
        for x in range(width):
            if y < 40:
                pixel = (120 + y, 180 + y // 2, 240)
            elif y < 60:
                pixel = (220, 40, 50) if (x // 20) % 2 else (250, 245, 240)
            elif 100 <= x < 140 and y >= 90:
                pixel = (90, 60, 40)
            else:
                pixel = (200, 190, 170)
            row += bytes(pixel)
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + chunk(b"IEND", b"")
    )


def demo_pdf(title: str) -> bytes:
    """A one-page PDF with a title line (objects and their byte offsets written out by hand)."""
    text = title.replace("\\", "").replace("(", "").replace(")", "")
    stream = f"BT /F1 24 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def demo_wav(seconds: float = 1.2, rate: int = 8000) -> bytes:
    """Two short tones, 8-bit mono (WhatsApp's voice notes are OGG/Opus, which the standard library
    cannot write; browsers play WAV the same way)."""
    frames = bytearray()
    for i in range(int(seconds * rate)):
        tone = 440 if i < rate * seconds / 2 else 660
        frames.append(int(128 + 60 * math.sin(2 * math.pi * tone * i / rate)))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(1)
        out.setframerate(rate)
        out.writeframes(bytes(frames))
    return buffer.getvalue()


# The smallest lossless WebP (one pixel): stickers are WebP, which the standard library cannot draw.
DEMO_WEBP = base64.b64decode("UklGRhoAAABXRUJQVlA4TA0AAAAvAAAAEAcQERGIiP4HAA==")


# A one-second 160x90 H.264 MP4 (3 KB), made once with the ffmpeg that the imageio-ffmpeg wheel ships:
# the standard library has no video encoder, and the demo's video should play like the rest.
DEMO_MP4 = base64.b64decode(
    "AAAAIGZ0eXBpc29tAAACAGlzb21pc28yYXZjMW1wNDEAAAN2bW9vdgAAAGxtdmhkAAAAAAAAAAAAAAAAAAAD6AAAA+gAAQAAAQAA"
    "AAAAAAAAAAAAAAEAAAAAAAAAAAAAAAAAAAABAAAAAAAAAAAAAAAAAABAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAgAA"
    "AqF0cmFrAAAAXHRraGQAAAADAAAAAAAAAAAAAAABAAAAAAAAA+gAAAAAAAAAAAAAAAAAAAAAAAEAAAAAAAAAAAAAAAAAAAABAAAA"
    "AAAAAAAAAAAAAABAAAAAAKAAAABaAAAAAAAkZWR0cwAAABxlbHN0AAAAAAAAAAEAAAPoAAAQAAABAAAAAAIZbWRpYQAAACBtZGhk"
    "AAAAAAAAAAAAAAAAAAAoAAAAKABVxAAAAAAALWhkbHIAAAAAAAAAAHZpZGUAAAAAAAAAAAAAAABWaWRlb0hhbmRsZXIAAAABxG1p"
    "bmYAAAAUdm1oZAAAAAEAAAAAAAAAAAAAACRkaW5mAAAAHGRyZWYAAAAAAAAAAQAAAAx1cmwgAAAAAQAAAYRzdGJsAAAAwHN0c2QA"
    "AAAAAAAAAQAAALBhdmMxAAAAAAAAAAEAAAAAAAAAAAAAAAAAAAAAAKAAWgBIAAAASAAAAAAAAAABFExhdmM2My4xLjEwMiBsaWJ4"
    "MjY0AAAAAAAAAAAAAAAAGP//AAAANmF2Y0MBZAAK/+EAGWdkAAqs2UKN+TARAAADAAEAAAMACg8SJZYBAAZo6+PLIsD9+PgAAAAA"
    "EHBhc3AAAAABAAAAAQAAABRidHJ0AAAAAAAARygAAAAAAAAAGHN0dHMAAAAAAAAAAQAAAAUAAAgAAAAAFHN0c3MAAAAAAAAAAQAA"
    "AAEAAAA4Y3R0cwAAAAAAAAAFAAAAAQAAEAAAAAABAAAoAAAAAAEAABAAAAAAAQAAAAAAAAABAAAIAAAAABxzdHNjAAAAAAAAAAEA"
    "AAABAAAABQAAAAEAAAAoc3RzegAAAAAAAAAAAAAABQAABxwAAAEzAAAAZQAAAB4AAAATAAAAFHN0Y28AAAAAAAAAAQAAA6YAAABh"
    "dWR0YQAAAFltZXRhAAAAAAAAACFoZGxyAAAAAAAAAABtZGlyYXBwbAAAAAAAAAAAAAAAACxpbHN0AAAAJKl0b28AAAAcZGF0YQAA"
    "AAEAAAAATGF2ZjYzLjEuMTAyAAAACGZyZWUAAAjtbWRhdAAAAp8GBf//m9xF6b3m2Ui3lizYINkj7u94MjY0IC0gY29yZSAxNjUg"
    "LSBILjI2NC9NUEVHLTQgQVZDIGNvZGVjIC0gQ29weWxlZnQgMjAwMy0yMDI1IC0gaHR0cDovL3d3dy52aWRlb2xhbi5vcmcveDI2"
    "NC5odG1sIC0gb3B0aW9uczogY2FiYWM9MSByZWY9MyBkZWJsb2NrPTE6MDowIGFuYWx5c2U9MHgzOjB4MTEzIG1lPWhleCBzdWJt"
    "ZT03IHBzeT0xIHBzeV9yZD0xLjAwOjAuMDAgbWl4ZWRfcmVmPTEgbWVfcmFuZ2U9MTYgY2hyb21hX21lPTEgdHJlbGxpcz0xIDh4"
    "OGRjdD0xIGNxbT0wIGRlYWR6b25lPTIxLDExIGZhc3RfcHNraXA9MSBjaHJvbWFfcXBfb2Zmc2V0PS0yIHRocmVhZHM9MyBsb29r"
    "YWhlYWRfdGhyZWFkcz0xIHNsaWNlZF90aHJlYWRzPTAgbnI9MCBkZWNpbWF0ZT0xIGludGVybGFjZWQ9MCBibHVyYXlfY29tcGF0"
    "PTAgY29uc3RyYWluZWRfaW50cmE9MCBiZnJhbWVzPTMgYl9weXJhbWlkPTIgYl9hZGFwdD0xIGJfYmlhcz0wIGRpcmVjdD0xIHdl"
    "aWdodGI9MSBvcGVuX2dvcD0wIHdlaWdodHA9MiBrZXlpbnQ9MjUwIGtleWludF9taW49NSBzY2VuZWN1dD00MCBpbnRyYV9yZWZy"
    "ZXNoPTAgcmNfbG9va2FoZWFkPTQwIHJjPWNyZiBtYnRyZWU9MSBjcmY9MjMuMCBxY29tcD0wLjYwIHFwbWluPTAgcXBtYXg9Njkg"
    "cXBzdGVwPTQgaXBfcmF0aW89MS40MCBhcT0xOjEuMDAAgAAABHVliIQAEv/+6Mn8yyqlcdNepmCLZ+ZjCeCggBy7si9azYdT9r2d"
    "IPSmlsIiN9jqffOXnmX1eU09JJqnIfCFyGggxES2IuLCTWrKkOOrVxo5F9nb1sJ2zL//ikWlhdL06BVTjfwf1azwcdpIO2A1ioNG"
    "porw4FHkNCX7pS1jbzPYHkCGV9CuN/62jAr0rLWG3ek6WesGiAxE0DtaIuaj8mGIfMSAsKp+foihNRZY4QIbrOVe1PPZeDyEfxns"
    "gxVIaj2cau7W8wU9YSJ+wH3vzrbk0IbpUTBl9kefFoDliPqO6ufix/1ed+bkkA+BjOYA0t2RqbltY8pgiZNIhXVrsjoP0BMuOrCI"
    "1gTHT2u0kS0Lqb8+rfX/DirRXOMnKrphV4LzQt33Pu2/MNaLPhekVaTVXEwioLoY/Y5524hayZNpzxpzkpRQ2xcFNHH3Jc7TE95e"
    "jE3cpUPmOi2pLsCpqUISkW/vjIb0fzG/bSS/KKfR3Ssu8dBWAVPJ68U5pw20OM/NWWlnZK3CvPy7fw3KujgPJ7BaFs+JeMrED2Fj"
    "dgauK+JSxqwr7A6eNKJWXJBVvcAN0dVQ4GUP3YOUtj7fOiqNYZ6yoiF6A65JdOsxpPQGDyEV/VUqzdY6J/6IQUyxGJl/Iygc3w84"
    "hxXTE05Qbcm8LspR9fiYfGz+qDDAxBldmNezI7Ew39k/vaSseN6EY/vLmG79pBgWDaYcIGlsMb5hee/KzEZDV+IPx5CTOcHhqxOR"
    "lIzmLhGZ5GgyVedhdBqpAMoRtsgBxkdu3zizsLzHNxvwkOfWuyCApjbx6NFfF7QuJvrjYSeBg92qqEaI42XlX2g2OBOQPwnzYxG5"
    "c1ZLyWSJ5KDYeEMRa1DLIL/9Qg4TzoVjTnbuRMWBpyZMzFmAhnsic2PWCVsc84kKFXZb+G9gSHugpAt4D/ysfFv3R12pB18ZVCeJ"
    "YbVzycKYxsoKGwzHOEYsB8A6Q3JxZ83l4WjXr+wRmPQV+RunTAZXJ1hKJxA6gVG2qx3gOEcHm9cy9uoc5cPQe2L/NWokD3O6FJua"
    "51kHcz7wmXKbxppAriEQvqOwI6scWSL091fuuqVNYf/oElrJeJxL5Sc3+P28hHrD1Zgyvm+nr4sH/83AWpa13X9zQ4xh/tjenNW1"
    "P7f2PfVeU4TmViopupqFdZOkCegog8XlzLix3xWZ3HVKEwiYiroZUNqky/zJ18aex1mh6ocXJYxmp0SYarW/XPh9fn5iz0YqsmXm"
    "nH9U2rlX1shA8TkL1ffHXb1nFSJI7imVijxOR8t7BPN1OgkTkR/0DqnIu6yyAILhUaY4YwMbld48e6tzLU20T2UAEiv2ErvvvoJb"
    "OAw5zt/DB/cljf3g+wkNcaU6pEHKfNdBjZm8i4w3xebvGWgJPy+FXFJJmTIcB1f4cVFjSqdOak03Tqql1t8bhl2YvchLKdxIEHjx"
    "wJ15/M6pvhcLConAa4L/Fup91k8zw1n8q80SplIHxW+o1HZGpmEpxLU3frhwCea34xoNcCB9AAABL0GaJGxD//6plgPvNGRIYNgU"
    "EANK9/Rh1gVOmKQD9QphYtmpPb/GtrwMm7TFEb9Z3d0J9KPdwsOH+YCn+SZ/H9xdKmyWhbf5F6rGA8RVD/0e5BQ6Sh0uHyC/F7QF"
    "Z2ng3fiGy/WQCRDduTSyP6LkMf0mrJyOJpmgdHT4RLo80aZf3tOiTkXfZT51ie/RMVfT1PJlpalNrgKpK8V7GNEIUSbFHGr4080g"
    "/4BMj2Xs+LLVsJVMdQHzdVdzKg77CrMnG97ITL84XohDH0XFRRymqGI1wAEnolwSLEGvb8UnRwks210pdMGrbq9CSkYetbqQwOjX"
    "27uIMJGg4NVReU2GxGhU0czoD6JYY3MATAeGxsrA89Y1ZXygbRcz1PgCBoCg31vo3FK+r7R5yepbeOweqwAAAGFBnkJ4gh8AQGvK"
    "+lTRA0QA+Q6CJ436zb9IiASNsFwUzy+WrCJQRgweTAqpbH9rhdA8qlgxGu9Lw4FJNU+RGEZo8vs8CmRix+0LtYNy57yw2qHCNRiu"
    "eZmSBvlsMRQ0faqTAAAAGgGeYXRD/wCQDNxvXAAVFVQ7zd/y8uq1UPIKAAAADwGeY2pD/wCP6GOnz08oPQ=="
)


def demo_media_file(kind: str, filename: str) -> tuple[bytes, str, str] | None:
    """(content, mime type, file name) for a demo message of this kind."""
    if kind == "image":
        return demo_png(), "image/png", filename or "shop-front.png"
    if kind == "document":
        return demo_pdf(filename or "Document"), "application/pdf", filename or "document.pdf"
    if kind == "audio":
        return demo_wav(), "audio/wav", filename or "voice-note.wav"
    if kind == "sticker":
        return DEMO_WEBP, "image/webp", filename or "sticker.webp"
    if kind == "video":
        return DEMO_MP4, "video/mp4", filename or "unboxing.mp4"
    return None


class Command(BaseCommand):
    help = "Create or complete the demo tenant (idempotent) and print its URL and login."

    def handle(self, *args: Any, **options: Any) -> None:
        # The seed creates a platform superuser and an owner with the README's published password.
        if settings.DJANGO_ENV not in SEED_ENVIRONMENTS:
            raise CommandError(
                f"seed_demo refuses to run with DJANGO_ENV={settings.DJANGO_ENV!r}: it creates accounts with "
                "a published password. It runs only when DJANGO_ENV is development or test."
            )
        user_model = get_user_model()
        if not user_model.objects.filter(username=PLATFORM_ADMIN).exists():
            user_model.objects.create_superuser(PLATFORM_ADMIN, PLATFORM_ADMIN, DEMO_PASSWORD)
        tenant = Tenant.objects.filter(slug=DEMO_SLUG).first()
        if tenant is None:
            tenant = onboard_tenant(
                slug=DEMO_SLUG,
                name="Demo Outfitters",
                owner_email=DEMO_OWNER,
                owner_password=DEMO_PASSWORD,
                plan=Tenant.Plan.BUSINESS,
            ).tenant
        from conversations.models import Channel
        from whatsapp import sandbox
        from whatsapp.services import connect_channel

        with schema_context(tenant.schema_name):
            connected = Channel.objects.filter(
                phone_number_id=SANDBOX_PHONE_NUMBER_ID, access_token_encrypted__gt=""
            ).exists()
        verified = NumberRoute.objects.filter(
            phone_number_id=SANDBOX_PHONE_NUMBER_ID, verified_at__isnull=False
        ).exists()
        if not connected or not verified:
            # `make run` seeds before the Procfile's sandbox starts: the ownership check asks a sandbox of
            # its own, which knows the demo number as the Procfile's does.
            with sandbox.serving([(SANDBOX_PHONE_NUMBER_ID, SANDBOX_WABA_ID)]):
                connect_channel(
                    tenant=tenant,
                    phone_number_id=SANDBOX_PHONE_NUMBER_ID,
                    waba_id=SANDBOX_WABA_ID,
                    access_token=SANDBOX_TOKEN,
                    display_phone="+1 555 000 0001",
                    name="Sandbox",
                )
        with schema_context(tenant.schema_name):
            self.seed_tenant()
        domain = tenant.get_primary_domain()
        self.stdout.write(f"Demo tenant: {tenant_url(domain.domain if domain else 'demo.localhost')}")
        self.stdout.write(f"Platform admin login: {PLATFORM_ADMIN} / {DEMO_PASSWORD}")
        self.stdout.write(f"Demo login: {DEMO_OWNER} / {DEMO_PASSWORD}")

    @transaction.atomic
    def seed_bot(self) -> None:
        """A welcome message, two keyword rules and two saved replies, so a new customer's first message
        shows the bot at work and `/` in the composer offers something; left alone once changed."""
        from conversations import settings_services
        from conversations.bot import load_settings
        from conversations.models import AutoReplyRule, CannedResponse

        if not load_settings().welcome_text:
            settings_services.update_bot_messages(
                welcome_enabled=True,
                welcome_text="Hi! Thanks for writing to Demo Outfitters. An agent will be with you shortly.",
                away_enabled=False,
                away_text="",
            )
        if not AutoReplyRule.objects.exists():
            for keyword, reply in BOT_RULES:
                settings_services.save_auto_reply_rule(keyword=keyword, reply=reply)
        if not CannedResponse.objects.exists():
            for shortcut, title, text in SAVED_REPLIES:
                settings_services.save_canned_response(shortcut=shortcut, title=title, text=text)

    @transaction.atomic
    def seed_ai(self) -> None:
        """The demo's LLM is the bundled sandbox (`make run` starts it), so the composer shows the copilot.
        The AI agent itself stays off until someone switches it on in Settings → AI; left alone once set."""
        from knowledge.ai_settings import load_agent_settings, update_agent_settings
        from knowledge.llm_sandbox import CHAT_MODEL, DEFAULT_KEY

        if settings.LLM_SANDBOX_URL and not load_agent_settings().llm_base_url:
            update_agent_settings(
                changes={
                    "llm_enabled": True,
                    "llm_base_url": settings.LLM_SANDBOX_URL,
                    "llm_model": CHAT_MODEL,
                    "llm_api_key": DEFAULT_KEY,
                }
            )

    def seed_tenant(self) -> None:
        from conversations.models import Channel, Conversation, Message
        from crm.models import Agent, Contact, Tag, Team
        from crm.services import create_agent
        from whatsapp.models import MessageTemplate
        from whatsapp.sandbox import DEMO_TEMPLATES

        user_model = get_user_model()
        agents = []
        for email, name, role in AGENTS:
            agent = Agent.objects.filter(user__email=email).first()
            agents.append(agent or create_agent(email=email, password=DEMO_PASSWORD, role=role, name=name))
        team, _ = Team.objects.get_or_create(name="Support")
        team.members.add(*agents[1:])
        channel = Channel.objects.get(phone_number_id=SANDBOX_PHONE_NUMBER_ID)
        for item in DEMO_TEMPLATES:
            MessageTemplate.objects.get_or_create(
                waba_id=SANDBOX_WABA_ID,
                name=item["name"],
                language=item["language"],
                defaults={
                    "meta_id": item["id"],
                    "category": item["category"],
                    "status": item["status"],
                    "components": item["components"],
                },
            )
        self.seed_bot()
        self.seed_ai()
        contacts = []
        for phone, name, tag_names in CONTACTS:
            contact, _ = Contact.objects.get_or_create(
                phone=phone, defaults={"name": name, "wa_id": phone[1:]}
            )
            for tag_name in tag_names:
                contact.tags.add(Tag.objects.get_or_create(name=tag_name)[0])
            contacts.append(contact)
        now = timezone.now()
        owner = user_model.objects.get(email=DEMO_OWNER)
        for row in demo_messages(now):
            if Message.objects.filter(wamid=row["wamid"]).exists():
                continue
            contact = contacts[row["contact"]]
            conversation, _ = Conversation.objects.get_or_create(
                contact=contact,
                defaults={
                    "channel": channel,
                    "assignee": (owner, None, agents[2].user)[row["contact"] % 3],
                    "team": team if row["contact"] >= 3 else None,
                },
            )
            outbound = row["direction"] == "out"
            Message.objects.create(
                conversation=conversation,
                direction=row["direction"],
                type=row["type"],
                text=row["text"],
                payload=row["payload"],
                preview=row["text"][:200],
                status=row["status"],
                wamid=row["wamid"],
                timestamp=row["timestamp"],
                sender=owner if outbound else None,
                error_code=131026 if row["status"] == "failed" else None,
                error_title="Message undeliverable" if row["status"] == "failed" else "",
            )
            updates: dict[str, Any] = {"last_message_at": row["timestamp"]}
            if outbound:
                contact.last_outbound_at = row["timestamp"]
            else:
                updates["last_inbound_at"] = row["timestamp"]
                updates["unread_count"] = conversation.unread_count + 1
                contact.last_inbound_at = row["timestamp"]
            contact.save(update_fields=["last_inbound_at", "last_outbound_at"])
            Conversation.objects.filter(pk=conversation.pk).update(**updates)
            conversation.refresh_from_db()
        self.seed_media(channel)

    def seed_media(self, channel: Any) -> None:
        """Each demo media message gets a real stored file (also in a demo seeded before there were any)."""
        from django.core.files.base import ContentFile
        from django.core.files.storage import default_storage

        from conversations.models import MediaFile, Message
        from tenants.db import connection

        kinds = ("image", "document", "audio", "sticker", "video")
        pending = Message.objects.filter(wamid__startswith="wamid.demo.", type__in=kinds, media__isnull=True)
        for message in pending:
            data = message.payload.get(message.type) or {}
            made = demo_media_file(message.type, str(data.get("filename", "")))
            if made is None:
                continue
            content, mime, name = made
            path = default_storage.save(
                f"whatsapp/{connection.schema_name}/{message.type}/demo/{name}", ContentFile(content)
            )
            MediaFile.objects.create(
                channel=channel,
                message=message,
                direction=message.direction,
                kind=message.type,
                media_id=str(data.get("id", "")),
                file=path,
                filename=name,
                mime_type=mime,
                size=len(content),
                sha256=hashlib.sha256(content).hexdigest(),
                status=MediaFile.Status.READY,
            )
