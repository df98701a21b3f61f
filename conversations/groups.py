"""Channel-layer group names. Every group carries the tenant schema; names stay under 100 characters."""

from __future__ import annotations


def agents_group(schema: str) -> str:
    return f"t.{schema}.agents"


def user_group(schema: str, user_id: int) -> str:
    return f"t.{schema}.u.{user_id}"
