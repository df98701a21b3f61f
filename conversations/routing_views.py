"""Settings → Routing (/settings/routing/) and Settings → SLA (/settings/sla/): how conversations find
an agent, and the response and resolution targets. For owners and admins; everyone else gets 403.
Writes go through conversations.services.routing and conversations.sla."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from conversations.bot import load_settings
from conversations.models import BusinessHours, Channel, RoutingSettings, SlaPolicy
from conversations.services import routing
from conversations.services.sla import delete_sla_policy, save_sla_policy
from core.errors import ServiceError
from crm.models import Agent, Team
from crm.services import set_agent_capacity
from crm.views import member_required


def _int_or_none(raw: str | None) -> int | str | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        return raw


def _routing_context(**extra: Any) -> dict[str, Any]:
    settings = RoutingSettings.load()
    agents = list(
        Agent.objects.select_related("user")
        .filter(user__is_active=True)
        .annotate(held=routing.held_count("user_id"))
        .order_by("user__first_name", "user__email")
    )
    return {
        "nav": "settings",
        "routing": settings,
        "modes": RoutingSettings.Mode.choices,
        "teams": list(Team.objects.all()),
        "agents": agents,
        "queued": routing.queued_conversations().count(),
        **extra,
    }


@require_http_methods(["GET", "POST"])
@member_required("admin")
def routing_page(request: HttpRequest) -> HttpResponseBase:
    if request.method == "POST":
        team = _int_or_none(request.POST.get("team"))
        capacity = _int_or_none(request.POST.get("default_capacity"))
        idle = _int_or_none(request.POST.get("idle_minutes"))
        try:
            if isinstance(capacity, str) or capacity is None:
                raise ServiceError("invalid_capacity", "Capacity must be a whole number from 1 to 1000.")
            if isinstance(idle, str) or idle is None:
                raise ServiceError(
                    "invalid_idle_minutes", "Idle minutes must be a whole number from 0 to 1440."
                )
            routing.update_routing_settings(
                mode=request.POST.get("mode", ""),
                default_capacity=capacity,
                team_id=-1 if isinstance(team, str) else team,
                idle_minutes=idle,
            )
        except ServiceError as exc:
            return render(
                request, "crm/settings/routing.html", _routing_context(error=exc.message), status=400
            )
        return redirect(reverse("inbox:settings-routing") + "?saved=1")
    return render(
        request, "crm/settings/routing.html", _routing_context(saved=request.GET.get("saved") == "1")
    )


@require_POST
@member_required("admin")
def routing_agent(request: HttpRequest, pk: int) -> HttpResponseBase:
    agent = get_object_or_404(Agent, pk=pk)
    capacity = _int_or_none(request.POST.get("capacity"))
    try:
        if isinstance(capacity, str):
            raise ServiceError("invalid_capacity", "Capacity must be a whole number from 0 to 1000.")
        set_agent_capacity(agent=agent, capacity=capacity)
    except ServiceError as exc:
        return render(request, "crm/settings/routing.html", _routing_context(error=exc.message), status=400)
    return redirect(reverse("inbox:settings-routing") + "?saved=1")


# --- Settings → SLA ---------------------------------------------------------------------------------


def _sla_context(**extra: Any) -> dict[str, Any]:
    return {
        "nav": "settings",
        "policies": list(SlaPolicy.objects.select_related("team", "channel")),
        "teams": list(Team.objects.all()),
        "channels": list(Channel.objects.all()),
        "hours": list(BusinessHours.objects.all()),
        "time_zone": load_settings().time_zone,
        **extra,
    }


def _policy_fields(request: HttpRequest) -> dict[str, Any]:
    def pk(name: str) -> int | None:
        value = _int_or_none(request.POST.get(name))
        if isinstance(value, str):
            return -1  # not a number: no such row
        return value

    return {
        "name": request.POST.get("name", ""),
        "first_response_minutes": request.POST.get("first_response_minutes", ""),
        "resolution_minutes": request.POST.get("resolution_minutes", ""),
        "team_id": pk("team"),
        "channel_id": pk("channel"),
        "business_hours_only": request.POST.get("business_hours_only") == "on",
    }


@require_http_methods(["GET", "POST"])
@member_required("admin")
def sla_page(request: HttpRequest) -> HttpResponseBase:
    if request.method == "POST":
        try:
            save_sla_policy(**_policy_fields(request))
        except ServiceError as exc:
            return render(request, "crm/settings/sla.html", _sla_context(error=exc.message), status=400)
        return redirect(reverse("inbox:settings-sla") + "?saved=1")
    return render(request, "crm/settings/sla.html", _sla_context(saved=request.GET.get("saved") == "1"))


@require_POST
@member_required("admin")
def sla_policy_delete(request: HttpRequest, pk: int) -> HttpResponseBase:
    delete_sla_policy(policy=get_object_or_404(SlaPolicy, pk=pk))
    return redirect(reverse("inbox:settings-sla") + "?saved=1")
