"""The workspace's phone region: the country whose numbers may be written without a country code (in
an import, a search, a form). Kept in the tenant's settings (tenant.settings["phone_region"])."""

from __future__ import annotations

import functools
from typing import Any

import phonenumbers
import pycountry
from django.db import transaction

from core.errors import ServiceError
from tenants.models import Tenant


@functools.cache
def region_choices() -> list[tuple[str, str]]:
    """Every region phonenumbers knows, as (code, "Country name (+code)"), by name. The names are
    pycountry's (ISO 3166): phonenumbers' own come with every locale's, ~100 MB in each process."""
    choices = []
    for region in phonenumbers.SUPPORTED_REGIONS:
        country = pycountry.countries.get(alpha_2=region)
        name = getattr(country, "common_name", None) or getattr(country, "name", None) or region
        choices.append((region, f"{name} (+{phonenumbers.country_code_for_region(region)})"))
    return sorted(choices, key=lambda choice: choice[1])


def region_name(region: str | None) -> str:
    return dict(region_choices()).get(region or "", "")


@transaction.atomic
def set_phone_region(*, tenant: Any, region: str) -> None:
    """Set (or, with "", clear) the workspace's phone region."""
    region = (region or "").strip().upper()
    if region and region not in phonenumbers.SUPPORTED_REGIONS:
        raise ServiceError("invalid_region", f"'{region}' is not a country code.", field="phone_region")
    locked = Tenant.objects.select_for_update().get(pk=tenant.pk)
    settings = dict(locked.settings or {})
    if region:
        settings["phone_region"] = region
    else:
        settings.pop("phone_region", None)
    locked.settings = settings
    locked.save(update_fields=["settings"])
    tenant.settings = settings


def adopt_phone_region(*, tenant: Any, phone: str) -> None:
    """A workspace without a phone region takes its first WhatsApp number's country: its customers are
    most likely there. Numbers phonenumbers cannot place (Meta's 555 test numbers) change nothing."""
    if (tenant.settings or {}).get("phone_region"):
        return
    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse(phone, None))
    except phonenumbers.NumberParseException:
        return
    if region and region in phonenumbers.SUPPORTED_REGIONS:
        set_phone_region(tenant=tenant, region=region)
