"""API latency at scale: one tenant with 100,000 contacts (BENCH_CONTACTS).

make bench BENCH_ARGS=api
Measures server time in-process (Django's test client, the whole middleware and DRF stack, no network)
for the contacts list, search by a name fragment and search by a phone number typed in other formats.
Targets: list p95 <= 30 ms, search p95 <= 50 ms.
"""

from __future__ import annotations

import io
import os
import random
import time
from typing import Any

from benchmarks.common import setup_django, summary_ms

SLUG = "benchapi"
FIRST = [
    "Anna",
    "Ben",
    "Carla",
    "David",
    "Elena",
    "Felix",
    "Grace",
    "Hugo",
    "Ines",
    "Jonas",
    "Karin",
    "Lukas",
    "Maria",
    "Noah",
    "Olga",
    "Paul",
    "Rosa",
    "Sven",
    "Tina",
    "Umar",
    "Vera",
    "Wolf",
    "Yara",
    "Zoe",
    "Ahmed",
    "Beatriz",
    "Chen",
    "Dmitri",
    "Emma",
    "Farah",
    "Giulia",
    "Hana",
    "Ivan",
    "Julia",
    "Kenji",
    "Leila",
    "Mateo",
    "Nadia",
    "Omar",
    "Priya",
]
LAST = [
    "Schmidt",
    "Müller",
    "Garcia",
    "Rossi",
    "Novak",
    "Smith",
    "Jones",
    "Khan",
    "Silva",
    "Dubois",
    "Weber",
    "Fischer",
    "Moreau",
    "Kowalski",
    "Jensen",
    "Berg",
    "Costa",
    "Nakamura",
    "Okafor",
    "Petrov",
    "Andersson",
    "Haddad",
    "Lopez",
    "Meyer",
    "Wagner",
    "Becker",
    "Hoffmann",
    "Schulz",
    "Koch",
    "Richter",
    "Klein",
    "Wolf",
    "Neumann",
    "Schwarz",
    "Zimmermann",
    "Braun",
    "Hartmann",
    "Lange",
    "Werner",
    "Krause",
]
NAME_FRAGMENTS = ["ann", "schm", "rossi", "ele", "jonas", "kowal", "naka", "eli", "garc", "okaf"]


def phone_of(index: int) -> str:
    return f"+49151{10_000_000 + index * 7:08d}"


def load(count: int) -> None:
    """COPY is the fast path: 100,000 contacts, their companies and tags in a few seconds."""
    from django.db import connection

    rng = random.Random(42)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO crm_tag (name, color) SELECT 'tag' || g, '#6b7280' FROM generate_series(1, 20) g"
        )
        cursor.execute(
            "INSERT INTO crm_company (name, domain, created_at, updated_at) "
            "SELECT 'Company ' || g, 'company' || g || '.example', now(), now() "
            "FROM generate_series(1, 2000) g"
        )
        cursor.execute("SELECT min(id) FROM crm_company")
        first_company = cursor.fetchone()[0]
        cursor.execute("SELECT min(id) FROM crm_tag")
        first_tag = cursor.fetchone()[0]
        buffer = io.StringIO()
        for index in range(count):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            company = str(first_company + rng.randrange(2000)) if rng.random() < 0.7 else "\\N"
            buffer.write(
                f"{first} {last}\t{phone_of(index)}\t{phone_of(index)[1:]}\t\t"
                f"{first.lower()}.{last.lower()}{index}@example.com\t{{}}\tunknown\tf\tnow\tnow\t{company}\n"
            )
        buffer.seek(0)
        raw = cursor.cursor
        with raw.copy(
            "COPY crm_contact (name, phone, wa_id, whatsapp_user_id, email, attributes, marketing_consent, "
            "blocked, created_at, updated_at, company_id) FROM STDIN"
        ) as copy:
            while chunk := buffer.read(1 << 20):
                copy.write(chunk)
        cursor.execute(
            "INSERT INTO crm_contact_tags (contact_id, tag_id) "
            "SELECT c.id, %s + (c.id * 7919) %% 20 FROM crm_contact c WHERE c.id %% 3 <> 0",
            [first_tag],
        )
        cursor.execute("ANALYZE")


def timed(client: Any, url: str, params: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    response = client.get(url, params or {})
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.content[:300]
    return elapsed


def main() -> dict[str, Any]:
    setup_django(fresh=False)
    from django.core.management import call_command
    from django.test import Client
    from django_tenants.utils import schema_context

    from crm import services
    from crm.models import Contact
    from onboarding.services import onboard_tenant
    from tenants.models import Tenant

    count = int(os.environ.get("BENCH_CONTACTS", "100000"))
    rounds = int(os.environ.get("BENCH_ROUNDS", "300"))
    call_command("migrate_platform", verbosity=0)
    if not Tenant.objects.filter(slug=SLUG).exists():
        onboard_tenant(
            slug=SLUG, name="Bench API", owner_email="owner@benchapi.test", owner_password="Sturdy-Pass-42"
        )
    with schema_context(SLUG):
        existing = Contact.objects.count()
        if existing != count:
            Contact.objects.all().delete()
            started = time.perf_counter()
            load(count)
            print(f"loaded {count} contacts in {time.perf_counter() - started:.1f} s")
        key = services.create_api_key(name="bench", role="admin").raw

    client = Client(HTTP_HOST=f"{SLUG}.localhost", HTTP_AUTHORIZATION=f"Bearer {key}")
    rng = random.Random(7)
    for _ in range(30):  # warm caches, connections and the plan cache
        timed(client, "/api/v1/contacts/")
        timed(client, "/api/v1/contacts/", {"search": rng.choice(NAME_FRAGMENTS)})

    scenarios: dict[str, list[float]] = {
        "list": [],
        "list_next_page": [],
        "search_name": [],
        "search_phone": [],
    }
    next_url = client.get("/api/v1/contacts/").json()["next"]
    formats = [
        lambda p: p,  # +4915110000007
        lambda p: f"+{p[1:3]} {p[3:6]} {p[6:10]} {p[10:]}",  # +49 151 1000 0007
        lambda p: "00" + p[1:],  # 004915110000007
        lambda p: p[1:],  # 4915110000007, a wa_id
        lambda p: f"({p[3:6]}) {p[6:10]}-{p[10:]}",  # (151) 1000-0007, no country code
    ]
    for index in range(rounds):
        scenarios["list"].append(timed(client, "/api/v1/contacts/"))
        scenarios["list_next_page"].append(timed(client, next_url))
        scenarios["search_name"].append(
            timed(client, "/api/v1/contacts/", {"search": NAME_FRAGMENTS[index % len(NAME_FRAGMENTS)]})
        )
        phone = phone_of(rng.randrange(count))
        scenarios["search_phone"].append(
            timed(client, "/api/v1/contacts/", {"search": formats[index % len(formats)](phone)})
        )
    result: dict[str, Any] = {"contacts": count, "rounds": rounds}
    for name, values in scenarios.items():
        result[name] = summary_ms(values)
        print(f"{name:16} p50 {result[name]['p50_ms']:6.2f} ms   p95 {result[name]['p95_ms']:6.2f} ms")
    return result


if __name__ == "__main__":
    main()
