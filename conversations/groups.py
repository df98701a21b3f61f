"""Channel-layer group names. Every group carries the tenant schema; names stay under 100 characters.

A socket's control groups (its user's and its session's, through which it is closed when the session
ends or the access changes) are named in crm.sessions: crm sends to them and cannot import this app.
"""

from __future__ import annotations


def agents_group(schema: str) -> str:
    return f"t.{schema}.agents"


def user_group(schema: str, user_id: int) -> str:
    return f"t.{schema}.u.{user_id}"


# Visibility groups (the inbox): an event about a conversation goes only to the groups of those allowed
# to see it; a socket joins the groups its user belongs to.
def everything_group(schema: str) -> str:
    """Owners, admins and supervisors: they see every conversation."""
    return f"t.{schema}.all"


def team_group(schema: str, team_id: int) -> str:
    return f"t.{schema}.team.{team_id}"


def unassigned_group(schema: str) -> str:
    """Every agent: a conversation with neither an assignee nor a team is open to all."""
    return f"t.{schema}.unassigned"


def viewers_group(schema: str, conversation_id: int) -> str:
    """Sockets that have this conversation open (presence)."""
    return f"t.{schema}.c.{conversation_id}"
