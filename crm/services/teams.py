"""Teams and their members."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction

from core import audit
from core.errors import ServiceError
from crm import sessions
from crm.models import Agent, Team
from crm.services.common import ensure_name_free

User = Any  # the tenant's auth user (django.contrib.auth.User)


@transaction.atomic
def save_team(
    *,
    team: Team | None = None,
    name: str,
    description: str = "",
    member_ids: Iterable[int] | None = None,
) -> Team:
    name = name.strip()
    if not name:
        raise ServiceError("invalid_name", "A team needs a name.", field="name")
    ensure_name_free(Team.objects.filter(name__iexact=name), team, "A team with this name exists.")
    team = team or Team()
    team.name = name
    team.description = description
    team.save()
    if member_ids is not None:
        ids = set(member_ids)
        agents = list(Agent.objects.filter(pk__in=ids))
        if len(agents) != len(ids):
            raise ServiceError(
                "unknown_agent",
                "Some members are not agents of this workspace.",
                field="members",
            )
        before = set(team.members.values_list("user_id", flat=True))
        team.members.set(agents)
        after = {a.user_id for a in agents}
        for joined in Agent.objects.filter(user_id__in=after - before).select_related("user"):
            audit.record("team.member_added", target=joined, details={"team": team.name})
        for left in Agent.objects.filter(user_id__in=before - after).select_related("user"):
            audit.record("team.member_removed", target=left, details={"team": team.name})
        # Sockets joined their teams' groups: whoever joined or left this team reconnects with the right
        # ones at once (not at the consumer's next periodic check), so a removed member hears no more of
        # the team's conversations.
        for user_id in before ^ {a.user_id for a in agents}:
            sessions.close_user_sockets(
                user_id=user_id,
                code=sessions.CLOSE_ACCESS_CHANGED,
                reason="teams_changed",
            )
    return team
