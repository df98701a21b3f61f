"""Tenant admin: WhatsApp numbers (token write-only), their templates (sync action) and media. Platform
admin: the webhook event log and its replay action."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.translation import ngettext

from conversations.models import Channel, MediaFile
from crm.models import Agent
from crm.selectors import role_of_user
from tenants.models import WebhookEvent
from whatsapp.client import GraphError
from whatsapp.models import MessageTemplate
from whatsapp.services import (
    ChannelError,
    VerifiedNumber,
    connect_channel,
    number_is_verified,
    replay_webhook_event,
    sync_templates,
    update_channel_credentials,
    verify_number,
)


class ChannelForm(forms.ModelForm):
    # Write-only: never rendered back, never logged. Empty on edit keeps the stored token.
    access_token = forms.CharField(
        widget=forms.PasswordInput(render_value=False),
        required=False,
        help_text="A system-user access token. Leave empty to keep the stored one.",
    )
    app_secret = forms.CharField(
        widget=forms.PasswordInput(render_value=False),
        required=False,
        help_text="Only if this number's Meta app differs from the platform's: it then verifies this "
        "number's webhooks, and only them. Owners only, on a number Meta confirmed. "
        "Empty keeps the stored one.",
    )

    class Meta:
        model = Channel
        fields = [
            "name",
            "phone_number_id",
            "waba_id",
            "display_phone",
            "throughput_cap",
            "coexistence",
            "status",
        ]

    # Set by WhatsAppChannelAdmin.get_form.
    request_role: str | None = None
    tenant: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.verified: VerifiedNumber | None = None
        if self.request_role != Agent.Role.OWNER:
            self.fields.pop("app_secret", None)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.instance.pk is None:
            self._verify_new_number(data)
        elif data.get("app_secret") and not number_is_verified(phone_number_id=self.instance.phone_number_id):
            self.add_error(
                "app_secret",
                "Meta has not confirmed this number for this workspace yet: connect it again first.",
            )
        return data

    def _verify_new_number(self, data: dict[str, Any]) -> None:
        """Meta confirms the number is the account's before anything is stored (shown on the form)."""
        if not data.get("access_token"):
            self.add_error("access_token", "An access token is required for a new number.")
            return
        if self.errors:
            return
        try:
            self.verified = verify_number(
                phone_number_id=data.get("phone_number_id") or "",
                waba_id=data.get("waba_id") or "",
                access_token=data["access_token"],
                tenant=self.tenant,
            )
        except ChannelError as exc:
            field = {"token_invalid": "access_token", "missing_token": "access_token"}.get(exc.code)
            self.add_error(field or "phone_number_id", exc.message)


@admin.register(Channel)
class WhatsAppChannelAdmin(admin.ModelAdmin):
    form = ChannelForm
    list_display = [
        "__str__",
        "name",
        "phone_number_id",
        "waba_id",
        "status",
        "status_reason",
        "throughput_cap",
    ]
    list_filter = ["status", "coexistence"]
    readonly_fields = ["status_reason", "templates_synced_at", "created_at"]
    actions = ["sync_templates_action"]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        # The role decides whether the app-secret field exists at all; the services check it again.
        return type(
            "ChannelFormForRequest",
            (form,),
            {"request_role": role_of_user(request.user), "tenant": getattr(request, "tenant", None)},
        )

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = super().get_fields(request, obj)
        if role_of_user(request.user) != Agent.Role.OWNER:
            fields = [field for field in fields if field != "app_secret"]
        return fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # The number's identity is its route to this tenant, confirmed by Meta for this account: change
        # either by connecting a number anew.
        return [*self.readonly_fields, "phone_number_id", "waba_id"] if obj else self.readonly_fields

    def save_model(self, request: HttpRequest, obj: Channel, form: Any, change: bool) -> None:
        token = form.cleaned_data.get("access_token") or ""
        secret = form.cleaned_data.get("app_secret") or ""
        role = role_of_user(request.user)
        if change:
            super().save_model(request, obj, form, change)
            try:
                update_channel_credentials(
                    channel=obj, access_token=token, app_secret=secret or None, by_role=role
                )
            except ChannelError as exc:
                messages.error(request, exc.message)
            return
        try:
            channel = connect_channel(
                tenant=request.tenant,  # type: ignore[attr-defined]
                phone_number_id=obj.phone_number_id,
                waba_id=obj.waba_id,
                access_token=token,
                display_phone=obj.display_phone,
                app_secret=secret,
                name=obj.name,
                throughput_cap=obj.throughput_cap,
                by_role=role,
                verified=form.verified,
            )
        except ChannelError as exc:
            messages.error(request, exc.message)
            return
        if obj.coexistence and not channel.coexistence:
            Channel.objects.filter(pk=channel.pk).update(coexistence=True)
        obj.pk = channel.pk

    @admin.action(description="Sync message templates from Meta")
    def sync_templates_action(self, request: HttpRequest, queryset: QuerySet[Channel]) -> None:
        for channel in queryset:
            try:
                count = sync_templates(channel=channel)
            except GraphError as exc:
                messages.error(request, f"{channel}: {exc.code} {exc.title}")
                continue
            synced = ngettext("%d template synced.", "%d templates synced.", count) % count
            messages.success(request, f"{channel}: {synced}")


@admin.register(MessageTemplate)
class MessageTemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "language", "category", "status", "quality_score", "waba_id", "synced_at"]
    list_filter = ["status", "category", "language"]
    search_fields = ["name"]
    readonly_fields = [f.name for f in MessageTemplate._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(MediaFile)
class MediaFileAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "direction", "status", "mime_type", "size", "created_at"]
    list_filter = ["kind", "direction", "status"]
    readonly_fields = [f.name for f in MediaFile._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(WebhookEvent)
class WebhookEventAdmin(admin.ModelAdmin):
    """The platform's log of webhook deliveries (a public table, tenants.WebhookEvent): read-only, with
    the replay that processes an event again through this channel's services."""

    list_display = ["id", "received_at", "status", "tenant", "phone_number_ids", "attempts"]
    list_filter = ["status"]
    list_select_related = ["tenant"]
    # The raw body as text (pretty JSON), not the bytes' repr (b'{"object": ...}').
    readonly_fields = [f.name if f.name != "body" else "body_text" for f in WebhookEvent._meta.fields]
    actions = ["replay"]

    @admin.display(description="Body")
    def body_text(self, obj: WebhookEvent) -> str:
        raw = bytes(obj.body or b"")
        try:
            text = json.dumps(json.loads(raw), indent=2, ensure_ascii=False, sort_keys=False)
        except ValueError:
            text = raw.decode("utf-8", errors="replace")
        return format_html('<pre class="webhook-body">{}</pre>', text)

    @admin.action(description="Replay the selected events (idempotent: nothing is duplicated)")
    def replay(self, request: HttpRequest, queryset: QuerySet[WebhookEvent]) -> None:
        queued = 0
        for event in queryset:
            outcome = replay_webhook_event(event=event)
            queued += outcome.queued
            if outcome.unknown:
                what = ", ".join(outcome.unknown)
                if outcome.queued:
                    note = f"Event {event.pk}: queued, but {what} is still unknown; that part is skipped."
                else:
                    note = (
                        f"Event {event.pk} not replayed: {what} is still unknown. Connect the number in "
                        "its workspace (WhatsApp numbers), then replay the event."
                    )
                self.message_user(request, note, level=messages.WARNING)
        if queued:
            self.message_user(
                request,
                ngettext("Queued %d event for processing.", "Queued %d events for processing.", queued)
                % queued,
            )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
