"""The platform admin (public host). Tenants are created through the onboarding service only:
`onboarding.admin` re-registers Tenant with a subclass of TenantAdmin that adds the creation form
(tenants must not import onboarding, which creates CRM rows)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import ngettext

from core.errors import ServiceError
from tenants import lifecycle
from tenants.models import Domain, NumberRoute, Tenant
from tenants.services import set_tenant_active


class DomainInline(admin.TabularInline):
    model = Domain
    extra = 0


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "plan", "is_active", "created_at", "primary_domain", "purge_after"]
    list_filter = ["plan", "is_active"]
    search_fields = ["slug", "name"]
    readonly_fields = ["schema_name", "created_at"]
    # No Django "delete": dropping a schema in one click lost a business. Deleting is `delete_tenants`
    # (suspend, export, drop after the grace period) and undone by `restore_tenants` (tenants.lifecycle).
    actions = ["suspend", "reactivate", "delete_tenants", "restore_tenants"]
    inlines = [DomainInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tenant]:
        return super().get_queryset(request).prefetch_related("domains")

    @admin.display(description="Primary domain")
    def primary_domain(self, obj: Tenant) -> str:
        return next((d.domain for d in obj.domains.all() if d.is_primary), "")

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A tenant needs its schema and its owner: onboarding.admin.PlatformTenantAdmin adds them.
        return False

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["schema_name", "slug", "name", "plan", "is_active", "settings", "created_at", "purge_after"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return []
        # A tenant being deleted comes back through Restore (which also requeues its stored webhooks).
        pending = ["is_active"] if obj.deletion_requested_at else []
        return ["schema_name", "slug", "created_at", "purge_after", *pending]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Removes the "Delete selected" action and the delete view alike.
        return False

    def save_model(self, request: HttpRequest, obj: Tenant, form: Any, change: bool) -> None:
        # Suspending or reactivating in the form goes through the same (audited) service as the actions.
        if change and "is_active" in form.changed_data:
            active, obj.is_active = obj.is_active, form.initial["is_active"]
            super().save_model(request, obj, form, change)
            set_tenant_active(tenant=obj, active=active)
            return
        super().save_model(request, obj, form, change)

    def get_inlines(self, request: HttpRequest, obj: Any = None) -> Any:
        return [DomainInline] if obj else []

    @admin.action(description="Suspend the selected tenants")
    def suspend(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        for tenant in queryset:
            set_tenant_active(tenant=tenant, active=False)
        count = queryset.count()
        self.message_user(request, ngettext("Suspended %d tenant.", "Suspended %d tenants.", count) % count)

    @admin.action(description="Reactivate the selected tenants")
    def reactivate(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        if queryset.filter(deletion_requested_at__isnull=False).exists():
            self.message_user(
                request,
                "Tenants being deleted come back with Restore; those were left as they are.",
                messages.WARNING,
            )
            queryset = queryset.filter(deletion_requested_at__isnull=True)
        for tenant in queryset:
            set_tenant_active(tenant=tenant, active=True)
        count = queryset.count()
        self.message_user(
            request, ngettext("Reactivated %d tenant.", "Reactivated %d tenants.", count) % count
        )

    @admin.action(
        description="Delete the selected tenants (suspend now, export in the background, drop after the "
        "grace period)"
    )
    def delete_tenants(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        for tenant in queryset:
            try:
                lifecycle.request_deletion(tenant=tenant, actor=request.user)
            except ServiceError as exc:
                self.message_user(request, f"{tenant.slug}: {exc.message}", messages.ERROR)
                continue
            self.message_user(
                request,
                f"{tenant.slug} suspended. Its export is being written in the background; then its data "
                f"is dropped after {lifecycle.grace_period().days} days unless restored before (Purge "
                "after shows the date once the export is stored; if the export fails, the audit log says "
                "why and the tenant stays suspended).",
            )

    @admin.action(description="Restore the selected tenants being deleted")
    def restore_tenants(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        for tenant in queryset:
            try:
                requeued = lifecycle.restore_tenant(tenant=tenant, actor=request.user)
            except ServiceError as exc:
                self.message_user(request, f"{tenant.slug}: {exc.message}", messages.ERROR)
                continue
            self.message_user(
                request, f"{tenant.slug} restored; {requeued} stored webhook event(s) requeued."
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
