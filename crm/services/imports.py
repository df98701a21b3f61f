"""CSV import of contacts and the export's column set."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from typing import Any

from django.db import transaction
from django.db.models.functions import Left
from django.utils import timezone

from core import csvsafe
from core.errors import ServiceError
from crm import outgoing_events
from crm.models import AttributeDefinition, Company, Contact, ContactImport, ImportRejection
from crm.services.contacts import clean_phone, create_contact, update_contact
from crm.services.tags import save_company, tags_by_name

User = Any  # the tenant's auth user (django.contrib.auth.User)


MAX_IMPORT_BYTES = 10 * 1024 * 1024
IMPORT_COLUMNS = ("phone", "name", "email", "company", "tags", "marketing_consent")
# An export imports back as it is: the import reads these columns and the attribute keys after them.
EXPORT_COLUMNS = (*IMPORT_COLUMNS, "blocked", "owner", "created_at", "last_inbound_at")


def read_contacts_csv(content: bytes | str) -> tuple[str, csv.DictReader[str]]:
    """A contacts CSV's text and a reader of its rows (header names trimmed and lower-cased): at most
    10 MB, UTF-8, with a 'phone' column. Reads only."""
    if isinstance(content, bytes):
        if len(content) > MAX_IMPORT_BYTES:
            raise ServiceError("file_too_large", "The file is larger than 10 MB.", field="file")
        try:
            content = content.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ServiceError("invalid_encoding", "The file must be UTF-8 CSV.", field="file") from exc
    reader = csv.DictReader(io.StringIO(content))
    reader.fieldnames = [(h or "").strip().lower() for h in (reader.fieldnames or [])]
    if "phone" not in reader.fieldnames:
        raise ServiceError("missing_phone_column", "The CSV needs a 'phone' column.", field="file")
    return content, reader


@transaction.atomic
def start_contact_import(*, filename: str, content: bytes | str, created_by: User | None) -> ContactImport:
    """Stores the file and enqueues the job after commit; the job reports progress on the row."""
    content, reader = read_contacts_csv(content)
    total = sum(1 for row in reader if any((v or "").strip() for v in row.values() if isinstance(v, str)))
    job = ContactImport.objects.create(
        filename=filename[:200],
        content=content,
        total_rows=total,
        created_by=created_by,
    )
    from crm.actors import import_contacts

    transaction.on_commit(lambda: import_contacts.send(job.pk))
    return job


PROGRESS_EVERY = 200


def run_contact_import(*, contact_import: ContactImport) -> ContactImport:
    """Each row in its own savepoint: a bad row is reported and skipped, never spoils the others.

    Rows are deduplicated by normalised phone: a known number updates that contact (blank cells do not
    erase what is there), a repeated number in the file updates the row before it.
    """
    job = contact_import
    job.status = ContactImport.Status.RUNNING
    job.processed_rows = job.created_count = job.updated_count = job.rejected_count = 0
    job.save(
        update_fields=[
            "status",
            "processed_rows",
            "created_count",
            "updated_count",
            "rejected_count",
        ]
    )
    job.rejections.all().delete()
    definitions = {d.key for d in AttributeDefinition.objects.all()}
    companies: dict[str, Company] = {}
    reader = csv.DictReader(io.StringIO(job.content))
    reader.fieldnames = [(h or "").strip().lower() for h in (reader.fieldnames or [])]
    row_number = 1
    changed: dict[int, str] = {}  # announced together at the end, as one batch of webhook events
    for row in reader:
        row_number += 1  # the header is row 1, as in a spreadsheet
        if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue
        try:
            with transaction.atomic(), outgoing_events.collect_contact_events() as row_events:
                created = _import_row(row, definitions=definitions, companies=companies)
            for pk, event in row_events.items():  # a rejected row's events never get here
                if event == "contact.created" or pk not in changed:
                    changed[pk] = event
            if created:
                job.created_count += 1
            else:
                job.updated_count += 1
        except ServiceError as exc:
            job.rejected_count += 1
            ImportRejection.objects.create(
                contact_import=job,
                row_number=row_number,
                reason=exc.message[:300],
                data=_row_data(row),
            )
        job.processed_rows += 1
        if job.processed_rows % PROGRESS_EVERY == 0:
            job.save(
                update_fields=[
                    "processed_rows",
                    "created_count",
                    "updated_count",
                    "rejected_count",
                ]
            )
    job.status = ContactImport.Status.DONE
    job.total_rows = job.processed_rows
    job.finished_at = timezone.now()
    job.save()
    outgoing_events.announce_contact_events(changed)
    return job


# What spreadsheets write for consent: the states themselves (as exported), and the usual yes/no words.
_YES = ("yes", "y", "true", "1", "opt_in", "optin", "subscribed")
_NO = ("no", "n", "false", "0", "opt_out", "optout", "unsubscribed")
CONSENT_WORDS = {
    **dict.fromkeys(_YES, Contact.MarketingConsent.OPTED_IN),
    **dict.fromkeys(_NO, Contact.MarketingConsent.OPTED_OUT),
    **{state: state for state in Contact.MarketingConsent.values},
}


def _consent(cell: str) -> str:
    word = cell.strip().lower().replace("-", "_").replace(" ", "_")
    if word not in CONSENT_WORDS:
        raise ServiceError(
            "invalid_consent",
            f"'{cell}' is not a consent state: use yes or no (or opted_in, opted_out, unknown).",
            field="marketing_consent",
        )
    return str(CONSENT_WORDS[word])


def ignored_columns(contact_import: ContactImport) -> list[str]:
    """The file's columns an import does not read: neither a contact field nor an attribute defined in
    this workspace (the export's own extra columns, which import back as they are, are not listed). Read
    from the file's first line alone."""
    head = (
        ContactImport.objects.filter(pk=contact_import.pk)
        .annotate(head=Left("content", 8192))
        .values_list("head", flat=True)
        .first()
    )
    header = next(csv.reader(io.StringIO(head or "")), [])
    known = {*EXPORT_COLUMNS, *AttributeDefinition.objects.values_list("key", flat=True)}
    columns = [name.strip().lower() for name in header]
    return [name for name in dict.fromkeys(columns) if name and name not in known]


def _row_data(row: Mapping[str | None, Any]) -> dict[str, Any]:
    return {str(k): v for k, v in row.items() if k is not None}


def _import_row(row: Mapping[str, Any], *, definitions: set[str], companies: dict[str, Company]) -> bool:
    if None in row:
        raise ServiceError("extra_cells", "The row has more cells than the header.")
    # A cell our export quoted against spreadsheet formulas (core.csvsafe) imports as it was.
    values = {k: csvsafe.unquote_cell((v or "").strip()) for k, v in row.items() if k}
    if not values.get("phone"):
        raise ServiceError("missing_phone", "The phone number is missing.")
    fields: dict[str, Any] = {}
    for name in ("name", "email", "marketing_consent"):
        if values.get(name):
            fields[name] = values[name]
    if "marketing_consent" in fields:
        fields["marketing_consent"] = _consent(fields["marketing_consent"])
    attributes = {k: v for k, v in values.items() if k in definitions and v}
    if attributes:
        fields["attributes"] = attributes
    if values.get("company"):
        name = values["company"]
        company = companies.get(name.lower()) or Company.objects.filter(name__iexact=name).first()
        companies[name.lower()] = company or save_company(name=name)
        fields["company"] = companies[name.lower()]
    tags = tags_by_name(values.get("tags", "").replace(";", ",").split(",")) if values.get("tags") else None
    phone = clean_phone(values["phone"])
    existing = Contact.objects.filter(phone=phone).first()
    if existing is None:
        contact = create_contact(phone=phone, **fields)
        if tags:
            contact.tags.add(*tags)
        return True
    update_contact(contact=existing, **fields)
    if tags:
        existing.tags.add(*tags)
    return False
