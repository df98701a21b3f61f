"""Custom contact attributes: their definitions and the values they accept."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction

from core import audit
from core.errors import ServiceError
from crm.models import AttributeDefinition
from crm.services.common import excluding

User = Any  # the tenant's auth user (django.contrib.auth.User)


@transaction.atomic
def save_attribute_definition(
    *,
    definition: AttributeDefinition | None = None,
    key: str,
    label: str,
    type: str,
    choices: list[str] | None = None,
    required: bool = False,
    position: int = 0,
) -> AttributeDefinition:
    if type not in AttributeDefinition.Type.values:
        raise ServiceError("invalid_type", f"'{type}' is not an attribute type.", field="type")
    choices = [str(c).strip() for c in (choices or []) if str(c).strip()]
    if type == AttributeDefinition.Type.CHOICE and not choices:
        raise ServiceError(
            "missing_choices",
            "A choice attribute needs at least one choice.",
            field="choices",
        )
    if excluding(AttributeDefinition.objects.filter(key=key), definition).exists():
        raise ServiceError(
            "duplicate_key",
            "An attribute with this key exists.",
            field="key",
            status=409,
        )
    created = definition is None or definition.pk is None
    definition = definition or AttributeDefinition()
    definition.key, definition.label, definition.type = key, label.strip() or key, type
    definition.choices = choices if type == AttributeDefinition.Type.CHOICE else []
    definition.required, definition.position = required, position
    definition.save()
    record_attribute_saved(definition=definition, created=created)
    return definition


def record_attribute_saved(*, definition: AttributeDefinition, created: bool) -> None:
    audit.record(
        "attribute.created" if created else "attribute.changed",
        target=("attribute", definition.pk, definition.label),
        details={"attribute": definition.key, "type": definition.type, "required": definition.required},
    )


@transaction.atomic
def delete_attribute_definition(*, definition: AttributeDefinition) -> None:
    """The definition goes; contacts keep the values stored under its key (they show again if an
    attribute with the same key is defined later)."""
    audit.record(
        "attribute.deleted",
        target=("attribute", definition.pk, definition.label),
        details={"attribute": definition.key},
    )
    definition.delete()


_TRUE = {"true", "yes", "1", "y", "on"}
_FALSE = {"false", "no", "0", "n", "off", ""}


def _coerce_attribute(definition: AttributeDefinition, value: Any) -> Any:
    kind = definition.type
    if kind == AttributeDefinition.Type.TEXT:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ValueError("must be text")
        text = str(value)
        if len(text) > 1000:
            raise ValueError("must be at most 1000 characters")
        return text
    if kind == AttributeDefinition.Type.NUMBER:
        if isinstance(value, bool):
            raise ValueError("must be a number")
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation as exc:
            raise ValueError("must be a number") from exc
        if not number.is_finite():
            raise ValueError("must be a number")
        # Beyond 15 digits a JSON number loses precision in most clients (and int("1e999999999") would
        # build a billion-digit integer).
        if number and number.adjusted() >= 15:
            raise ValueError("must be less than 10^15")
        return int(number) if number == number.to_integral_value() else float(number)
    if kind == AttributeDefinition.Type.DATE:
        try:
            return dt.date.fromisoformat(str(value).strip()).isoformat()
        except ValueError as exc:
            raise ValueError("must be a date (YYYY-MM-DD)") from exc
    if kind == AttributeDefinition.Type.BOOLEAN:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError("must be true or false")
    if str(value) not in definition.choices:
        raise ValueError(f"must be one of: {', '.join(definition.choices)}")
    return str(value)


def clean_attributes(
    values: Mapping[str, Any],
    *,
    existing: Mapping[str, Any] | None = None,
    creating: bool = False,
) -> dict[str, Any]:
    """Values checked against the tenant's definitions; None or "" removes a value."""
    if not isinstance(values, Mapping):
        raise ServiceError(
            "invalid_attributes",
            "Attributes must be an object of key: value.",
            field="attributes",
        )
    definitions = {d.key: d for d in AttributeDefinition.objects.all()}
    result = dict(existing or {})
    for key, value in values.items():
        definition = definitions.get(key)
        if definition is None:
            raise ServiceError(
                "unknown_attribute",
                f"'{key}' is not a defined attribute.",
                field=f"attributes.{key}",
            )
        if value is None or value == "":
            result.pop(key, None)
            continue
        try:
            result[key] = _coerce_attribute(definition, value)
        except ValueError as exc:
            raise ServiceError(
                "invalid_attribute",
                f"{definition.label} {exc}.",
                field=f"attributes.{key}",
            ) from exc
    if creating:
        missing = [d for d in definitions.values() if d.required and d.key not in result]
        if missing:
            raise ServiceError(
                "missing_attribute",
                f"{missing[0].label} is required.",
                field=f"attributes.{missing[0].key}",
            )
    return result
