from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django_tenants.utils import schema_context

from conftest import host_of, login
from crm import services
from crm.actors import import_contacts
from crm.models import Contact, ContactImport
from crm.tests.helpers import api_client, assert_error, issue_key

CSV = """phone,name,email,company,tags,tier
+1 415 555 2671,Grace Hopper,grace@navy.example,Navy,"vip, lead",gold
,No Phone,np@example.test,,,
12,Short Number,,,,
+14155550100,Bad Email,not-an-email,,,
0014155552671,Grace H. (again),,,,
+14155550101,Bad Tier,,,,tin
+442079460958,Oliver,,Workhouse,lead,
+14155550102,Too,many,cells,,,,extra
"""


def test_an_import_with_bad_rows_reports_each_rejection_and_dedupes_by_phone(
    tenant_a, django_capture_on_commit_callbacks
):
    with schema_context("alpha"):
        services.save_attribute_definition(key="tier", label="Tier", type="choice", choices=["gold"])
        with django_capture_on_commit_callbacks() as callbacks:
            job = services.start_contact_import(filename="c.csv", content=CSV.encode(), created_by=None)
        assert len(callbacks) == 1  # the job is enqueued once the upload is committed
        assert job.total_rows == 8
        import_contacts(job.pk)  # what the worker runs
        job.refresh_from_db()
        rejections = {r.row_number: r.reason for r in job.rejections.all()}
        grace = Contact.objects.get(phone="+14155552671")
        grace_tags = sorted(t.name for t in grace.tags.all())
        grace_company = grace.company.name
        assert Contact.objects.count() == 2
        oliver_company = Contact.objects.get(phone="+442079460958").company
    assert job.status == ContactImport.Status.DONE
    assert (job.processed_rows, job.created_count, job.updated_count, job.rejected_count) == (8, 2, 1, 5)
    assert job.percent == 100
    assert sorted(rejections) == [3, 4, 5, 7, 9]
    assert "missing" in rejections[3]
    assert "not a valid phone" in rejections[4]
    assert "email" in rejections[5].lower()
    assert "Tier" in rejections[7]
    assert "more cells" in rejections[9]
    assert grace.name == "Grace H. (again)"  # the later row updates the earlier one
    assert grace.email == "grace@navy.example"  # blank cells do not erase
    assert grace.attributes == {"tier": "gold"} and grace_company == "Navy"
    assert grace_tags == ["lead", "vip"]
    assert oliver_company.name == "Workhouse"


def test_a_file_without_a_phone_column_is_refused_up_front(tenant_a):
    key = issue_key(tenant_a, role="supervisor")
    upload = SimpleUploadedFile("c.csv", b"name,email\nA,a@example.test\n", content_type="text/csv")
    response = api_client(tenant_a, key).post("/api/v1/contact-imports/", {"file": upload})
    error = assert_error(response, 400, "missing_phone_column")
    assert list(error["details"]) == ["file"]


def test_an_import_through_the_api_shows_progress_and_rejections(
    tenant_a, django_capture_on_commit_callbacks
):
    client = api_client(tenant_a, issue_key(tenant_a, role="supervisor"))
    upload = SimpleUploadedFile("c.csv", CSV.encode(), content_type="text/csv")
    with django_capture_on_commit_callbacks():
        response = client.post("/api/v1/contact-imports/", {"file": upload})
    assert response.status_code == 202, response.content
    job_id = response.json()["id"]
    assert response.json()["status"] == "pending" and response.json()["total_rows"] == 8
    with schema_context("alpha"):
        import_contacts(job_id)
    status = client.get(f"/api/v1/contact-imports/{job_id}/").json()
    assert (status["status"], status["percent"], status["rejected_count"]) == ("done", 100, 4)
    rejected = client.get(f"/api/v1/contact-imports/{job_id}/rejections/").json()["results"]
    assert [r["row_number"] for r in rejected] == [3, 4, 5, 9]  # no tier definition: its column is ignored
    assert rejected[0]["data"]["name"] == "No Phone"


def test_spreadsheet_consent_words_import_and_an_unknown_one_is_rejected_with_the_accepted_words(tenant_a):
    csv_text = (
        "phone,name,marketing_consent\n"
        "+14155550111,Yes Person,Yes\n"
        "+14155550112,No Person,no\n"
        "+14155550113,True Person,TRUE\n"
        "+14155550114,Exported,opted_out\n"
        "+14155550115,Maybe,maybe\n"
    )
    with schema_context("alpha"):
        job = services.start_contact_import(filename="c.csv", content=csv_text.encode(), created_by=None)
        import_contacts(job.pk)
        job.refresh_from_db()
        consent = dict(Contact.objects.values_list("name", "marketing_consent"))
        reasons = [r.reason for r in job.rejections.all()]
    assert consent == {
        "Yes Person": "opted_in",
        "No Person": "opted_out",
        "True Person": "opted_in",
        "Exported": "opted_out",
    }
    assert len(reasons) == 1 and "'maybe' is not a consent state: use yes or no" in reasons[0]


def test_the_import_page_names_the_columns_it_did_not_read(tenant_a, owner_a):
    csv_text = "phone,name,city,tier,blocked,<b>x</b>\n+14155550121,Ann,Lisbon,gold,false,1\n"
    with schema_context("alpha"):
        services.save_attribute_definition(key="tier", label="Tier", type="text")
        job = services.start_contact_import(filename="c.csv", content=csv_text.encode(), created_by=None)
        import_contacts(job.pk)
        assert services.ignored_columns(job) == ["city", "<b>x</b>"]
    page = login(Client(HTTP_HOST=host_of(tenant_a)), tenant_a, owner_a).get(f"/contacts/import/{job.pk}/")
    html = page.content.decode()
    assert "Not imported: the columns <code>city</code>, <code>&lt;b&gt;x&lt;/b&gt;</code>" in html
    assert "Add the attribute" in html


def test_a_hostile_phone_cell_is_shown_as_text_in_the_rejection(tenant_a, owner_a):
    csv_text = "phone,name\n<script>alert(1)</script>,Mallory\n"
    with schema_context("alpha"):
        job = services.start_contact_import(filename="c.csv", content=csv_text.encode(), created_by=None)
        import_contacts(job.pk)
    html = login(Client(HTTP_HOST=host_of(tenant_a)), tenant_a, owner_a).get(f"/contacts/import/{job.pk}/")
    page = html.content.decode()
    assert "&#x27;&lt;script&gt;alert(1)&lt;/script&gt;&#x27; is not a valid phone number." in page
    assert "<script>alert(1)</script>" not in page
