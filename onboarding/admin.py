"""The platform admin's onboarding: creating a tenant (through the onboarding service) and reviewing
self-service signups. Tenant is re-registered with a subclass of tenants.admin.TenantAdmin, so whatever
that admin offers (lifecycle actions, lists) stays, and creation is added here: tenants must not import
onboarding."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import ngettext

from core.errors import ServiceError
from onboarding import signup as signup_services
from onboarding.models import ChecklistState, Signup
from onboarding.services import OnboardingError, onboard_tenant, validate_onboarding
from tenants.admin import TenantAdmin
from tenants.models import Tenant


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


class PlatformTenantAdmin(TenantAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return admin.ModelAdmin.has_add_permission(self, request)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = TenantCreationForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ["slug", "name", "plan", "owner_email", "owner_password"]
        return super().get_fields(request, obj)

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


admin.site.unregister(Tenant)
admin.site.register(Tenant, PlatformTenantAdmin)


@admin.register(Signup)
class SignupAdmin(admin.ModelAdmin):
    list_display = ["business_name", "slug", "email", "owner_name", "status", "created_at", "verified_at"]
    list_filter = ["status"]
    search_fields = ["business_name", "slug", "email"]
    list_select_related = ["tenant"]
    actions = ["approve", "reject"]
    fields = (
        "business_name",
        "slug",
        "owner_name",
        "email",
        "status",
        "created_at",
        "verified_at",
        "completed_at",
        "tenant",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Read-only: the Approve and Reject actions (through the signup services) are the only writes.
        return False

    @admin.action(description="Approve the selected signups (creates each workspace and e-mails its owner)")
    def approve(self, request: HttpRequest, queryset: QuerySet[Signup]) -> None:
        approved = 0
        for signup in queryset:
            try:
                signup_services.approve_signup(signup_id=signup.pk)
            except ServiceError as exc:
                self.message_user(request, f"{signup.slug}: {exc.message}", level=messages.WARNING)
            else:
                approved += 1
        if approved:
            self.message_user(
                request,
                ngettext("Approved %d signup.", "Approved %d signups.", approved) % approved,
            )

    @admin.action(description="Reject the selected signups")
    def reject(self, request: HttpRequest, queryset: QuerySet[Signup]) -> None:
        rejected = 0
        for signup in queryset:
            try:
                signup_services.reject_signup(signup_id=signup.pk)
            except ServiceError as exc:
                self.message_user(request, f"{signup.slug}: {exc.message}", level=messages.WARNING)
            else:
                rejected += 1
        if rejected:
            self.message_user(
                request, ngettext("Rejected %d signup.", "Rejected %d signups.", rejected) % rejected
            )


@admin.register(ChecklistState)
class ChecklistStateAdmin(admin.ModelAdmin):
    list_display = ["tenant", "dismissed_at", "dismissed_by_email"]
    list_select_related = ["tenant"]
    readonly_fields = ["tenant", "dismissed_at", "dismissed_by_email"]

    # A tenant's checklist state is written by the owner dismissing it; operators only look (and may
    # delete a row to show the checklist again).
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
