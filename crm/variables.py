"""The `{{…}}` variables staff write in texts sent to a contact: saved replies now, campaign parameters later.

One small syntax, on purpose not Django's template language: the text is the tenant's own input, so it is
only scanned for `{{ name }}` placeholders and never evaluated (no filters, tags, attribute lookups or
expressions). Allowed names:

    {{contact.first_name}}            the first word of the contact's name
    {{contact.name}}                  the contact's name
    {{agent.name}}                    the staff member who inserts or sends the text
    {{contact.attributes.<key>}}      a custom attribute (crm.AttributeDefinition.key)

Spaces inside the braces are allowed (`{{ contact.name }}`). Anything else written in double braces is an
unknown variable: `check` refuses it when the text is saved, naming it. A text that was valid when saved
can meet an attribute definition deleted since; `render` then writes nothing for it rather than failing
a send (any other unknown placeholder, which `check` never lets through, is left as written).
Every missing value renders as the empty string (no invented "there"): the writer sees the gap in the
composer before sending. Nothing is escaped, since WhatsApp text is plain text. Text outside double
braces (`{% … %}`, a lone `{`) is left exactly as written.

This module reads no database itself: callers pass the attribute keys (`attribute_keys()` reads them once).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from core.errors import ServiceError

# `{{`, optional spaces, anything but braces (so a stray `{{ {{x}} }}` finds only the inner one), `}}`.
PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
ATTRIBUTE_PREFIX = "contact.attributes."
FIXED_NAMES = ("contact.first_name", "contact.name", "agent.name")


@dataclass(frozen=True)
class Variable:
    name: str  # as written, without braces and surrounding spaces
    raw: str  # the whole placeholder as written, e.g. "{{ contact.name }}"


def parse(text: str) -> list[Variable]:
    """The placeholders of the text, in order, repeats included."""
    return [Variable(name=m.group(1), raw=m.group(0)) for m in PLACEHOLDER.finditer(text or "")]


def attribute_keys() -> set[str]:
    """The current tenant's attribute keys: what `{{contact.attributes.<key>}}` may name."""
    from crm.models import AttributeDefinition

    return set(AttributeDefinition.objects.values_list("key", flat=True))


def is_known(name: str, keys: Iterable[str]) -> bool:
    if name in FIXED_NAMES:
        return True
    return name.startswith(ATTRIBUTE_PREFIX) and name[len(ATTRIBUTE_PREFIX) :] in set(keys)


def unknown(text: str, *, keys: Iterable[str]) -> list[Variable]:
    """The placeholders that name no variable, first occurrence of each."""
    known = set(keys)
    seen: set[str] = set()
    found = []
    for variable in parse(text):
        if not is_known(variable.name, known) and variable.name not in seen:
            seen.add(variable.name)
            found.append(variable)
    return found


def check(text: str, *, keys: Iterable[str] | None = None, field: str = "text") -> None:
    """Refuse a text with an unknown variable (ServiceError `unknown_variable`, naming the first one)."""
    bad = unknown(text, keys=attribute_keys() if keys is None else keys)
    if not bad:
        return
    first = bad[0]
    name = first.name
    if name.startswith(ATTRIBUTE_PREFIX):
        hint = f"there is no custom attribute with the key “{name[len(ATTRIBUTE_PREFIX) :]}”"
    else:
        hint = "use {{contact.first_name}}, {{contact.name}}, {{agent.name}} or {{contact.attributes.<key>}}"
    more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
    raise ServiceError("unknown_variable", f"Unknown variable {first.raw}{more}: {hint}.", field=field)


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    return str(value)


def values_for(contact: Any, agent: Any = None) -> dict[str, str]:
    """Every fixed variable's value for a contact and the staff member (a User, or None)."""
    name = (getattr(contact, "name", "") or "").strip()
    # A customer-facing text never shows the agent's email: no full name renders as nothing.
    agent_name = (agent.get_full_name() or "").strip() if agent is not None else ""
    return {
        "contact.first_name": name.split()[0] if name else "",
        "contact.name": name,
        "agent.name": agent_name,
    }


def render(text: str, *, contact: Any, agent: Any = None) -> str:
    """The text with each placeholder replaced by its value for this contact and agent."""
    values = values_for(contact, agent)
    attributes = getattr(contact, "attributes", None) or {}

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in values:
            return values[name]
        if name.startswith(ATTRIBUTE_PREFIX):
            return _shown(attributes.get(name[len(ATTRIBUTE_PREFIX) :]))
        # Never stored through `check`; left as written so nothing is silently dropped or evaluated.
        return match.group(0)

    return PLACEHOLDER.sub(value, text or "")
