"""Phone numbers: E.164 through phonenumbers, never a hand-made regex."""

from __future__ import annotations

import phonenumbers


class InvalidPhoneNumber(ValueError):
    pass


def normalize_phone(raw: str, *, default_region: str | None = None) -> str:
    """'+1 (555) 123-4567', '0044 20 7946 0958', '15551234567' (a WhatsApp wa_id) → E.164.

    Digits with no '+' are read as international (WhatsApp's wa_id has no '+') unless a default region
    is given and the number is valid there.
    """
    text = (raw or "").strip()
    if not text:
        raise InvalidPhoneNumber("A phone number is required.")
    candidates: list[tuple[str, str | None]] = []
    if text.startswith("+"):
        candidates.append((text, None))
    elif text.startswith("00"):
        candidates.append(("+" + text[2:], None))
    else:
        if default_region:
            candidates.append((text, default_region))
        candidates.append(("+" + text, None))
    for number, region in candidates:
        try:
            parsed = phonenumbers.parse(number, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_possible_number(parsed) and phonenumbers.is_valid_number(parsed):
            return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if len(candidates) == 1 and not text.startswith(("+", "00")):
        # Read as international only: with no workspace country a local number can't be read.
        raise InvalidPhoneNumber(
            f"'{raw}' is not a valid phone number. Write it with its country code (+…), or set the "
            "workspace's country in Settings → Phone numbers to read numbers without one."
        )
    raise InvalidPhoneNumber(f"'{raw}' is not a valid phone number.")
