"""The searchable pickers (crm.forms.PickerField): their search endpoints and the forms that use them.

Attacker's side first: another tenant's records never appear and cannot be submitted, a signed-out
visitor is sent to sign in, and what a record is named is shown as text."""

from __future__ import annotations

import re

import pytest
from django_tenants.utils import schema_context

from conftest import login
from crm import services
from crm.models import Company, Contact, Deal, Task

HOSTILE = "<img src=x onerror=alert(1)>"


@pytest.fixture
def owner_client(client_a, tenant_a, owner_a):
    return login(client_a, tenant_a, owner_a)


@pytest.fixture
def ada(tenant_a):
    with schema_context("alpha"):
        company = services.save_company(name="Analytical Engines", domain="engines.example")
        return services.create_contact(phone="+14155550101", name="Ada Lovelace", company=company)


def _options(response) -> list[str]:
    return re.findall(r'data-value="(\d+)"', response.content.decode())


def test_the_contact_picker_finds_a_contact_by_part_of_its_name_with_its_company_to_prefill(
    owner_client, ada
):
    response = owner_client.get("/contacts/pick/", {"q": "lovel"})
    assert response.status_code == 200
    assert _options(response) == [str(ada.pk)]
    body = response.content.decode()
    assert f'data-fill-value="{ada.company_id}"' in body
    assert 'data-fill-label="Analytical Engines"' in body


def test_the_contact_picker_finds_a_contact_by_phone_number(owner_client, ada):
    assert _options(owner_client.get("/contacts/pick/", {"q": "(415) 555-0101"})) == [str(ada.pk)]


def test_the_company_and_deal_pickers_find_by_name_and_title(owner_client, ada):
    with schema_context("alpha"):
        deal = services.create_deal(title="Difference engine", contact=ada)
    assert _options(owner_client.get("/companies/pick/", {"q": "engines"})) == [str(ada.company_id)]
    assert _options(owner_client.get("/deals/pick/", {"q": "differ"})) == [str(deal.pk)]


def test_a_picker_never_shows_another_tenants_records(owner_client, ada, tenant_b):
    with schema_context("beta"):
        company = services.save_company(name="Lovelace Rival Ltd")
        services.create_contact(phone="+14155550199", name="Ada Lovelace", company=company)
        services.create_deal(title="Lovelace rival deal")
    assert _options(owner_client.get("/contacts/pick/", {"q": "Lovelace"})) == [str(ada.pk)]
    assert _options(owner_client.get("/companies/pick/", {"q": "Rival"})) == []
    assert _options(owner_client.get("/deals/pick/", {"q": "rival"})) == []


@pytest.mark.parametrize("url", ["/contacts/pick/", "/companies/pick/", "/deals/pick/"])
def test_a_signed_out_visitor_is_sent_to_sign_in_by_a_picker(client_a, url):
    response = client_a.get(url, {"q": "a"})
    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_a_picker_shows_a_hostile_name_as_text(owner_client, tenant_a):
    with schema_context("alpha"):
        company = services.save_company(name=HOSTILE)
        services.create_contact(phone="+14155550102", name=HOSTILE, company=company)
        services.create_deal(title=HOSTILE)
    for url in ("/contacts/pick/", "/companies/pick/", "/deals/pick/"):
        body = owner_client.get(url, {"q": "onerror"}).content.decode()
        assert "&lt;img src=x onerror=alert(1)&gt;" in body
        assert "<img" not in body


def test_a_picker_returns_at_most_ten_options(owner_client, tenant_a):
    with schema_context("alpha"):
        for i in range(14):
            services.create_contact(phone=f"+1415555{i:04d}", name=f"Babbage {i}")
    assert len(_options(owner_client.get("/contacts/pick/", {"q": "Babbage"}))) == 10


def test_a_picker_with_nothing_typed_lists_nothing(owner_client, ada):
    assert _options(owner_client.get("/contacts/pick/", {"q": "  "})) == []


def test_the_deal_form_renders_pickers_with_the_chosen_names(owner_client, ada):
    with schema_context("alpha"):
        deal = services.create_deal(title="Engine", contact=ada, company=ada.company)
    body = owner_client.get(f"/deals/{deal.pk}/edit/").content.decode()
    assert f'name="contact" value="{ada.pk}"' in body
    assert 'name="contact_search" value="Ada Lovelace"' in body
    assert 'name="company_search" value="Analytical Engines"' in body
    assert 'hx-get="/contacts/pick/"' in body


def test_a_new_deal_for_a_contact_starts_with_the_contacts_company(owner_client, ada):
    body = owner_client.get(f"/deals/new/?contact={ada.pk}").content.decode()
    assert f'name="company" value="{ada.company_id}"' in body


def _stage_id() -> int:
    with schema_context("alpha"):
        return services.default_pipeline().stages.order_by("position").first().pk


def test_a_deal_saved_with_a_contact_and_no_company_gets_the_contacts_company(owner_client, ada):
    data = {"title": "Engine", "stage": _stage_id(), "contact": ada.pk, "value": "1", "currency": "USD"}
    response = owner_client.post("/deals/new/", data)
    assert response.status_code == 302
    with schema_context("alpha"):
        deal = Deal.objects.get(title="Engine")
        assert (deal.contact_id, deal.company_id) == (ada.pk, ada.company_id)


def test_without_a_script_a_typed_name_that_matches_one_contact_is_that_contact(owner_client, ada):
    data = {
        "title": "Typed",
        "stage": _stage_id(),
        "contact_search": "Lovelace",
        "value": "1",
        "currency": "USD",
    }
    assert owner_client.post("/deals/new/", data).status_code == 302
    with schema_context("alpha"):
        assert Deal.objects.get(title="Typed").contact_id == ada.pk


def test_a_deal_with_another_tenants_contact_id_is_a_form_error_and_saves_nothing(
    owner_client, ada, tenant_b
):
    with schema_context("beta"):
        theirs = services.create_contact(phone="+14155550199", name="Theirs")
    for contact_id in (theirs.pk + 1000, 99999999, "abc", "99999999999999999999999"):
        data = {"title": "Bad", "stage": _stage_id(), "contact": contact_id, "value": "1", "currency": "USD"}
        response = owner_client.post("/deals/new/", data)
        assert response.status_code == 200
        assert "Pick a contact from the list" in response.content.decode()
    with schema_context("alpha"):
        assert not Deal.objects.filter(title="Bad").exists()


def test_the_merge_form_is_a_contact_picker(owner_client, ada):
    body = owner_client.get(f"/contacts/{ada.pk}/").content.decode()
    assert 'name="other_search"' in body
    assert 'hx-get="/contacts/pick/"' in body


def test_merging_a_picked_contact_merges_it(owner_client, ada):
    with schema_context("alpha"):
        other = services.create_contact(phone="+14155550103", name="A. Lovelace")
    owner_client.post(f"/contacts/{ada.pk}/merge/", {"other": other.pk})
    with schema_context("alpha"):
        assert not Contact.objects.filter(pk=other.pk).exists()


def test_merging_another_tenants_or_a_missing_contact_is_refused_and_changes_nothing(
    owner_client, ada, tenant_b
):
    with schema_context("beta"):
        theirs = services.create_contact(phone="+14155550199", name="Theirs")
    with schema_context("alpha"):
        before = sorted(Contact.objects.values_list("pk", flat=True))
    for other in (theirs.pk, 99999999, ""):
        response = owner_client.post(f"/contacts/{ada.pk}/merge/", {"other": other}, follow=True)
        assert "Contacts merged." not in response.content.decode()
        assert "Pick" in response.content.decode() or "required" in response.content.decode()
    with schema_context("alpha"):
        assert sorted(Contact.objects.values_list("pk", flat=True)) == before
    with schema_context("beta"):
        assert Contact.objects.filter(pk=theirs.pk).exists()


def test_the_task_list_form_picks_a_contact_and_a_deal(owner_client, ada):
    with schema_context("alpha"):
        deal = services.create_deal(title="Engine", contact=ada)
    body = owner_client.get("/tasks/").content.decode()
    assert 'name="contact_search"' in body and 'name="deal_search"' in body
    owner_client.post("/tasks/new/", {"title": "Call", "contact": ada.pk, "deal": deal.pk})
    with schema_context("alpha"):
        task = Task.objects.get(title="Call")
        assert (task.contact_id, task.deal_id) == (ada.pk, deal.pk)


def test_a_task_with_another_tenants_or_a_missing_relation_is_refused_and_saves_nothing(
    owner_client, ada, tenant_b
):
    with schema_context("beta"):
        theirs = services.create_contact(phone="+14155550199", name="Theirs")
        their_deal = services.create_deal(title="Theirs", contact=theirs)
    for data in (
        {"contact": theirs.pk + 1000},
        {"deal": their_deal.pk + 1000},
        {"contact": "99999999999999999999999"},
        {"contact_search": "nobody by this name"},
    ):
        response = owner_client.post("/tasks/new/", {"title": "Sneaky", **data}, follow=True)
        assert "The task was not added." in response.content.decode()
    with schema_context("alpha"):
        assert not Task.objects.filter(title="Sneaky").exists()


def test_a_contacts_page_adds_tasks_to_that_contact_without_a_picker(owner_client, ada):
    body = owner_client.get(f"/contacts/{ada.pk}/").content.decode()
    assert f'type="hidden" name="contact" value="{ada.pk}"' in body
    assert 'name="contact_search"' not in body


def test_the_company_list_still_searches_by_domain(owner_client, ada):
    with schema_context("alpha"):
        Company.objects.create(name="Other")
    body = owner_client.get("/companies/", {"q": "engines.ex"}).content.decode()
    assert "Analytical Engines" in body and "Other" not in body


def test_a_new_deal_in_a_workspace_without_pipelines_starts_in_the_standard_pipelines_first_stage(
    owner_client, tenant_a
):
    from crm.models import Pipeline, Stage

    with schema_context("alpha"):
        Pipeline.objects.all().delete()
    body = owner_client.get("/deals/new/").content.decode()
    with schema_context("alpha"):
        first = Stage.objects.order_by("position", "id").first()
    assert first is not None
    assert f'<option value="{first.pk}" selected>' in body


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "javascript:alert(1)"])
def test_adding_a_task_never_redirects_off_the_site(owner_client, target):
    response = owner_client.post("/tasks/new/", {"title": "Call", "next": target})
    assert response["Location"] == "/tasks/"


def test_adding_a_task_from_a_page_goes_back_to_that_page(owner_client, ada):
    response = owner_client.post(
        "/tasks/new/", {"title": "Call", "contact": ada.pk, "next": f"/contacts/{ada.pk}/"}
    )
    assert response["Location"] == f"/contacts/{ada.pk}/"


def test_the_pickers_say_search_in_the_models_own_plural():
    from crm.forms import DealForm

    form = DealForm()
    assert form.fields["company"].widget.attrs["placeholder"] == "Search companies"
    assert form.fields["contact"].widget.attrs["placeholder"] == "Search contacts"
