"""Settings → Integrations (owners and admins): webhook endpoints, the secret shown once, the delivery log
with manual redelivery."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from core.errors import ServiceError
from crm.outgoing_events import EVENTS
from crm.views import member_required
from integrations import services
from integrations.models import WebhookDelivery, WebhookEndpoint

LOG_SIZE = 100


@member_required("admin")
def webhook_list(request: HttpRequest) -> HttpResponse:
    error: ServiceError | None = None
    new_secret = None
    created = None
    url, description, events = "", "", list(EVENTS[:1])
    if request.method == "POST":
        url = request.POST.get("url", "")
        description = request.POST.get("description", "")
        events = request.POST.getlist("events")
        try:
            created, new_secret = services.create_endpoint(
                url=url,
                events=events,
                description=description,
                created_by=request.user,
            )
        except ServiceError as exc:
            error = exc
    return render(
        request,
        "integrations/webhooks.html",
        {
            "nav": "settings",
            "endpoints": WebhookEndpoint.objects.order_by("id"),
            "events": EVENTS,
            "posted": {"url": url, "description": description, "events": events},
            "error": error,
            "created": created,
            "new_secret": new_secret,
        },
        status=400 if error else 200,
    )


@member_required("admin")
def webhook_detail(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
    deliveries = WebhookDelivery.objects.filter(endpoint=endpoint).order_by("-id")[:LOG_SIZE]
    return render(
        request,
        "integrations/webhook_detail.html",
        {"nav": "settings", "endpoint": endpoint, "deliveries": deliveries, "events": EVENTS},
    )


@require_POST
@member_required("admin")
def webhook_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
    try:
        if action == "delete":
            services.delete_endpoint(endpoint=endpoint)
            messages.success(request, "Endpoint deleted.")
            return redirect("integrations-webhooks")
        if action == "enable":
            services.update_endpoint(endpoint=endpoint, active=True)
        elif action == "disable":
            services.update_endpoint(endpoint=endpoint, active=False)
        elif action == "events":
            services.update_endpoint(endpoint=endpoint, events=request.POST.getlist("events"))
        elif action == "test":
            services.send_test_event(endpoint=endpoint)
            messages.success(request, "A ping event is on its way.")
        else:
            raise Http404
    except ServiceError as exc:
        messages.error(request, exc.message)
    return redirect("integrations-webhook", pk=endpoint.pk)


@require_POST
@member_required("admin")
def webhook_redeliver(request: HttpRequest, pk: int, delivery_id: int) -> HttpResponse:
    delivery = get_object_or_404(
        WebhookDelivery.objects.select_related("endpoint"), pk=delivery_id, endpoint_id=pk
    )
    try:
        services.redeliver(delivery=delivery)
        messages.success(request, "Queued for redelivery.")
    except ServiceError as exc:
        messages.error(request, exc.message)
    return redirect("integrations-webhook", pk=pk)
