"""Shared by the signup tests: a valid signup's fields and the link an e-mail carries."""

from __future__ import annotations

import re
from typing import Any

from conftest import PASSWORD

LINK_RE = re.compile(r"http://localhost(?::\d+)?/signup/verify/([^/\s]+)/")


def signup_fields(**overrides: Any) -> dict[str, str]:
    fields = {
        "business_name": "Gamma Goods",
        "slug": "gamma",
        "owner_name": "Grace Gamma",
        "email": "grace@gamma.test",
        "password": PASSWORD,
    }
    fields.update(overrides)
    return fields


def token_from(message: Any) -> str:
    match = LINK_RE.search(message.body)
    assert match, message.body
    return match.group(1)
