"""The platform admin (public host). Tenants are created through the onboarding service only."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.translation import ngettext

from tenants.models import Domain, NumberRoute, Tenant, WebhookEvent
from tenants.services import OnboardingError, onboard_tenant, set_tenant_active, validate_onboarding


class TenantCreationForm(forms.ModelForm):
    # Plain fields: the onboarding service owns the slug and e-mail rules and their messages. The model's
    # SlugField and an EmailField said it a second time, and the slug's ("letters, numbers, underscores
    # or hyphens") contradicted the service's (lowercase letters and digits).
    slug = forms.CharField(
        max_length=40,
        help_text="2 to 40 lowercase letters or digits, starting with a letter: the workspace's address.",
    )
    owner_email = forms.CharField(label="Owner email", widget=forms.EmailInput)
    owner_password = forms.CharField(widget=forms.PasswordInput, strip=False)

    class Meta:
        model = Tenant
        fields = ["slug", "name", "plan"]

    def validate_unique(self) -> None:
        # The onboarding service owns the uniqueness rules and their messages.
        return None

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        try:
            validate_onboarding(
                slug=(data.get("slug") or "").strip().lower(),
                name=data.get("name") or "",
                owner_email=(data.get("owner_email") or "").strip().lower(),
                owner_password=data.get("owner_password") or "",
            )
        except OnboardingError as exc:
            field = exc.field if exc.field in self.fields else None
            # A field Django already refused (a required one left empty) keeps its one message.
            if field is None or field not in self.errors:
                self.add_error(field, exc.message)
        return data


class DomainInline(admin.TabularInline):
    model = Domain
    extra = 0


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "plan", "is_active", "created_at", "primary_domain"]
    list_filter = ["plan", "is_active"]
    search_fields = ["slug", "name"]
    readonly_fields = ["schema_name", "created_at"]
    actions = ["suspend", "reactivate"]
    inlines = [DomainInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tenant]:
        return super().get_queryset(request).prefetch_related("domains")

    @admin.display(description="Primary domain")
    def primary_domain(self, obj: Tenant) -> str:
        return next((d.domain for d in obj.domains.all() if d.is_primary), "")

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = TenantCreationForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ["slug", "name", "plan", "owner_email", "owner_password"]
        return ["schema_name", "slug", "name", "plan", "is_active", "settings", "created_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["schema_name", "slug", "created_at"] if obj else []

    def get_inlines(self, request: HttpRequest, obj: Any = None) -> Any:
        return [DomainInline] if obj else []

    def save_model(self, request: HttpRequest, obj: Tenant, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        result = onboard_tenant(
            slug=form.cleaned_data["slug"],
            name=form.cleaned_data["name"],
            owner_email=form.cleaned_data["owner_email"],
            owner_password=form.cleaned_data["owner_password"],
            plan=form.cleaned_data["plan"],
        )
        obj.pk = result.tenant.pk
        messages.success(request, f"Tenant created: {result.url}")

    @admin.action(description="Suspend the selected tenants")
    def suspend(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        for tenant in queryset:
            set_tenant_active(tenant=tenant, active=False)
        count = queryset.count()
        self.message_user(request, ngettext("Suspended %d tenant.", "Suspended %d tenants.", count) % count)

    @admin.action(description="Reactivate the selected tenants")
    def reactivate(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        for tenant in queryset:
            set_tenant_active(tenant=tenant, active=True)
        count = queryset.count()
        self.message_user(
            request, ngettext("Reactivated %d tenant.", "Reactivated %d tenants.", count) % count
        )


@admin.register(Domain)
class DomainAdmin(admin.ModelAdmin):
    list_display = ["domain", "tenant", "is_primary"]
    search_fields = ["domain", "tenant__slug"]
    list_select_related = ["tenant"]
    autocomplete_fields = ["tenant"]


@admin.register(NumberRoute)
class NumberRouteAdmin(admin.ModelAdmin):
    """Where the operator resolves a number claimed by two workspaces: delete the wrong route, then the
    rightful owner connects the number (Meta confirms it is theirs)."""

    list_display = ["phone_number_id", "tenant", "waba_id", "verified_at", "created_at"]
    list_filter = [("verified_at", admin.EmptyFieldListFilter)]
    search_fields = ["phone_number_id", "waba_id", "tenant__slug"]
    list_select_related = ["tenant"]
    autocomplete_fields = ["tenant"]
    readonly_fields = ["waba_id", "verified_at", "created_at"]


@admin.register(WebhookEvent)
class WebhookEventAdmin(admin.ModelAdmin):
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
        from whatsapp.services import replay_webhook_event

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
