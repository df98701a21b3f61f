"""The platform admin (public host). Tenants are created through the onboarding service only."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from tenants.models import Domain, NumberRoute, Tenant, WebhookEvent
from tenants.services import OnboardingError, onboard_tenant, set_tenant_active, validate_onboarding


class TenantCreationForm(forms.ModelForm):
    owner_email = forms.EmailField()
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
            self.add_error(exc.field if exc.field in self.fields else None, exc.message)
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
        self.message_user(request, f"Suspended {queryset.count()} tenant(s).")

    @admin.action(description="Reactivate the selected tenants")
    def reactivate(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        for tenant in queryset:
            set_tenant_active(tenant=tenant, active=True)
        self.message_user(request, f"Reactivated {queryset.count()} tenant(s).")


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
    readonly_fields = [f.name for f in WebhookEvent._meta.fields]
    actions = ["replay"]

    @admin.action(description="Replay the selected events (idempotent: nothing is duplicated)")
    def replay(self, request: HttpRequest, queryset: QuerySet[WebhookEvent]) -> None:
        from whatsapp.services import replay_webhook_event

        events = list(queryset)
        for event in events:
            replay_webhook_event(event=event)
        self.message_user(request, f"Queued {len(events)} event(s) for processing.")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
