"""The workspace's phone region: numbers written without a country code (an import's "912 345 678")
are read as that country's. An admin sets it in Settings; connecting the first number sets it."""

from __future__ import annotations

import pytest
from django.test import Client
from django_tenants.utils import schema_context

from conftest import host_of, login, make_agent
from core.errors import ServiceError
from crm import services
from crm.actors import import_contacts
from crm.models import Contact
from tenants.models import Tenant

CSV = "phone,name\n912 345 678,Local\n+14155550131,Abroad\n"


def _import() -> tuple[list[str], list[str]]:
    job = services.start_contact_import(filename="c.csv", content=CSV.encode(), created_by=None)
    import_contacts(job.pk)
    phones = sorted(Contact.objects.filter(name__in=["Local", "Abroad"]).values_list("phone", flat=True))
    return phones, [r.reason for r in job.rejections.all()]


def test_an_admin_sets_the_country_and_an_import_reads_local_numbers_in_it(tenant_a, owner_a):
    client = login(Client(HTTP_HOST=host_of(tenant_a)), tenant_a, owner_a)
    page = client.get("/contacts/import/").content.decode()
    assert "Every number needs its country code" in page
    with schema_context(tenant_a.schema_name):
        phones, reasons = _import()
    assert phones == ["+14155550131"] and reasons == [
        "'912 345 678' is not a valid phone number. Write it with its country code (+…), or set the "
        "workspace's country in Settings → Phone numbers to read numbers without one."
    ]

    response = client.post("/settings/", {"phone_region": "PT"})
    assert response.status_code == 302
    assert Tenant.objects.get(pk=tenant_a.pk).settings["phone_region"] == "PT"
    page = client.get("/contacts/import/").content.decode()
    assert "Numbers without a country code are read as Portugal (+351) numbers." in page
    assert '<option value="PT" selected>Portugal (+351)</option>' in client.get("/settings/").content.decode()
    with schema_context(tenant_a.schema_name):  # as the worker runs a tenant's job (tenants.jobs)
        phones, reasons = _import()
    assert phones == ["+14155550131", "+351912345678"] and reasons == []

    client.post("/settings/", {"phone_region": ""})
    assert "phone_region" not in Tenant.objects.get(pk=tenant_a.pk).settings


def test_a_bad_country_or_a_lower_role_changes_nothing(tenant_a, owner_a):
    owner = login(Client(HTTP_HOST=host_of(tenant_a)), tenant_a, owner_a)
    bad = owner.post("/settings/", {"phone_region": "ZZ"})
    assert bad.status_code == 200 and "Select a valid choice" in bad.content.decode()
    supervisor = make_agent(tenant_a, email="sup-region@alpha.test", role="supervisor").user
    refused = login(Client(HTTP_HOST=host_of(tenant_a)), tenant_a, supervisor).post(
        "/settings/", {"phone_region": "PT"}
    )
    assert refused.status_code == 403
    assert "phone_region" not in Tenant.objects.get(pk=tenant_a.pk).settings
    with schema_context(tenant_a.schema_name), pytest.raises(ServiceError) as error:
        services.set_phone_region(tenant=tenant_a, region="<script>")
    assert error.value.code == "invalid_region"


def test_the_first_number_gives_the_workspace_its_country_and_later_ones_do_not_change_it(tenant_a):
    services.adopt_phone_region(tenant=tenant_a, phone="+15550000001")  # Meta's test range: no country
    assert "phone_region" not in Tenant.objects.get(pk=tenant_a.pk).settings
    services.adopt_phone_region(tenant=tenant_a, phone="+34612345678")
    services.adopt_phone_region(tenant=tenant_a, phone="+351912345678")
    assert Tenant.objects.get(pk=tenant_a.pk).settings["phone_region"] == "ES"


def test_the_country_names_do_not_load_phonenumbers_locale_tables():
    """phonenumbers' own country names come with every locale's (~100 MB in each process)."""
    import sys

    assert dict(services.region_choices())["KR"] == "South Korea (+82)"
    assert "phonenumbers.geodata.locale" not in sys.modules
