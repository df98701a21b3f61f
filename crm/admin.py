"""The tenant admin: every CRM model, with list pages whose query count does not grow with the rows."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils.translation import ngettext

from core.errors import ServiceError
from crm import selectors, services
from crm.forms import integration_role_choices
from crm.models import (
    Agent,
    ApiKey,
    AttributeDefinition,
    Company,
    Contact,
    ContactIdentity,
    ContactImport,
    Deal,
    DealStageChange,
    ImportRejection,
    Invitation,
    Note,
    Pipeline,
    Stage,
    Tag,
    Task,
    Team,
)


class AgentForm(forms.ModelForm):
    class Meta:
        model = Agent
        # Not the user: pointing a role at another account would hand that account the role.
        fields = ["role", "availability"]

    def __init__(self, *args: Any, request_role: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.request_role = request_role

    def clean_role(self) -> str:
        role = self.cleaned_data["role"]
        current = self.instance.role if self.instance.pk else None
        if role != current:
            try:
                services.check_can_grant(by_role=self.request_role, current=current, new=role)
            except ServiceError as exc:
                raise forms.ValidationError(exc.message) from exc
        return role


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    """Roles and availability, with the pages' rules: nobody grants above their own role and only an
    owner changes an owner (read-only for everyone else). Agents are invited and deactivated from
    Settings → Team, which creates and switches off their users; deleting the row here would strip a
    role behind the services' back, so it is not offered."""

    form = AgentForm
    list_display = ["__str__", "email", "role", "availability", "team_names", "created_at"]
    list_filter = ["role", "availability", "teams"]
    search_fields = ["user__email", "user__first_name", "user__last_name"]
    list_select_related = ["user"]
    readonly_fields = ["user"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Agent]:
        return super().get_queryset(request).prefetch_related("teams")

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["user", "role", "availability"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if not super().has_change_permission(request, obj):
            return False
        if obj is not None and obj.role == Agent.Role.OWNER:
            return selectors.role_of_user(request.user) == Agent.Role.OWNER
        return True

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        role = selectors.role_of_user(request.user)

        class BoundAgentForm(form):  # type: ignore[misc, valid-type]
            def __init__(self, *args: Any, **kw: Any) -> None:
                super().__init__(*args, request_role=role, **kw)

        return BoundAgentForm

    def save_model(self, request: HttpRequest, obj: Agent, form: Any, change: bool) -> None:
        if change and "role" in form.changed_data:
            role = obj.role
            obj.role = form.initial["role"]
            super().save_model(request, obj, form, change)
            services.change_agent_role(agent=obj, role=role, by_role=selectors.role_of_user(request.user))
            return
        super().save_model(request, obj, form, change)

    @admin.display(description="Email", ordering="user__email")
    def email(self, obj: Agent) -> str:
        return obj.user.email

    @admin.display(description="Teams")
    def team_names(self, obj: Agent) -> str:
        return ", ".join(t.name for t in obj.teams.all())


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "description", "member_count", "created_at"]
    search_fields = ["name"]
    autocomplete_fields = ["members"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Team]:
        return super().get_queryset(request).annotate(member_count=Count("members"))

    @admin.display(description="Members", ordering="member_count")
    def member_count(self, obj: Any) -> int:
        return int(obj.member_count)


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ["agent", "invited_by", "sent_at", "accepted_at"]
    list_select_related = ["agent__user", "invited_by"]
    search_fields = ["agent__user__email"]
    list_filter = [("accepted_at", admin.EmptyFieldListFilter)]
    readonly_fields = ["agent", "invited_by", "sent_at", "accepted_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Invitations are sent from Settings → Team, which creates the agent and emails the link.
        return False


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ["name", "color", "contact_count"]
    search_fields = ["name"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tag]:
        return super().get_queryset(request).annotate(contact_count=Count("contacts"))

    @admin.display(description="Contacts", ordering="contact_count")
    def contact_count(self, obj: Any) -> int:
        return int(obj.contact_count)


class ContactInline(admin.TabularInline):
    model = Contact
    fields = ["name", "phone", "email"]
    readonly_fields = ["name", "phone", "email"]
    extra = 0
    max_num = 0
    show_change_link = True
    can_delete = False


@admin.register(Company)
class CompanyAdmin(admin.ModelAdmin):
    list_display = ["name", "domain", "contact_count", "created_at"]
    search_fields = ["name", "domain"]
    inlines = [ContactInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Company]:
        return super().get_queryset(request).annotate(contact_count=Count("contacts"))

    @admin.display(description="Contacts", ordering="contact_count")
    def contact_count(self, obj: Any) -> int:
        return int(obj.contact_count)

    def save_model(self, request: HttpRequest, obj: Company, form: Any, change: bool) -> None:
        obj.domain = services.clean_domain(obj.domain)
        super().save_model(request, obj, form, change)


@admin.register(AttributeDefinition)
class AttributeDefinitionAdmin(admin.ModelAdmin):
    list_display = ["label", "key", "type", "required", "position"]
    list_filter = ["type", "required"]
    search_fields = ["label", "key"]
    prepopulated_fields = {"key": ["label"]}

    # Audited like the settings page and the API (the admin form has checked the fields).
    def save_model(self, request: HttpRequest, obj: AttributeDefinition, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        services.record_attribute_saved(definition=obj, created=not change)

    def delete_model(self, request: HttpRequest, obj: AttributeDefinition) -> None:
        services.delete_attribute_definition(definition=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[AttributeDefinition]) -> None:
        for definition in queryset:
            services.delete_attribute_definition(definition=definition)


class ContactAdminForm(forms.ModelForm):
    class Meta:
        model = Contact
        fields = [
            "name",
            "phone",
            "wa_id",
            "email",
            "company",
            "tags",
            "attributes",
            "owner",
            "marketing_consent",
            "blocked",
        ]

    def clean_phone(self) -> str:
        if not self.cleaned_data.get("phone") and self.instance.pk and self.instance.whatsapp_user_id:
            return ""  # known by a WhatsApp user id alone: no number to require
        try:
            return services.clean_phone(self.cleaned_data["phone"])
        except ServiceError as exc:
            raise forms.ValidationError(exc.message) from exc

    def clean_attributes(self) -> dict[str, Any]:
        try:
            return services.clean_attributes(self.cleaned_data.get("attributes") or {})
        except ServiceError as exc:
            raise forms.ValidationError(exc.message) from exc


class ContactIdentityInline(admin.TabularInline):
    """Meta's ids for the contact: recorded from webhooks, never typed in."""

    model = ContactIdentity
    fields = ["kind", "value", "scope", "updated_at"]
    readonly_fields = ["kind", "value", "scope", "updated_at"]
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class NoteInline(admin.TabularInline):
    model = Note
    fields = ["body", "author", "created_at"]
    readonly_fields = ["author", "created_at"]
    extra = 0


class ContactTaskInline(admin.TabularInline):
    model = Task
    fk_name = "contact"
    fields = ["title", "due_at", "assignee", "done"]
    autocomplete_fields = ["assignee"]
    extra = 0


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    form = ContactAdminForm
    list_display = [
        "__str__",
        "phone",
        "email",
        "company",
        "owner",
        "tag_names",
        "marketing_consent",
        "blocked",
        "last_inbound_at",
    ]
    list_filter = ["marketing_consent", "blocked", "tags", "created_at"]
    list_select_related = ["company", "owner"]
    search_fields = ["name", "phone", "email"]
    search_help_text = "Name, email, tag, or a phone number in any format"
    autocomplete_fields = ["tags", "company", "owner"]
    readonly_fields = [
        "last_inbound_at",
        "last_outbound_at",
        "created_at",
        "updated_at",
        "marketing_consent_at",
        "username",
        "whatsapp_user_id",
    ]
    inlines = [ContactIdentityInline, NoteInline, ContactTaskInline]
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Contact]:
        return super().get_queryset(request).prefetch_related("tags")

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[Contact], search_term: str) -> Any:
        return selectors.search_contacts(queryset, search_term), False

    # Deleting from the admin goes through the service, which audits it like the pages and the API.
    def delete_model(self, request: HttpRequest, obj: Contact) -> None:
        services.delete_contact(contact=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Contact]) -> None:
        for contact in queryset:
            services.delete_contact(contact=contact)

    @admin.display(description="Tags")
    def tag_names(self, obj: Contact) -> str:
        return ", ".join(t.name for t in obj.tags.all())

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        instances = formset.save(commit=False)
        for instance in instances:
            if isinstance(instance, Note) and instance.author_id is None:
                instance.author = request.user  # type: ignore[assignment]
            if isinstance(instance, Task) and instance.created_by_id is None:
                instance.created_by = request.user  # type: ignore[assignment]
            instance.save()
        for obj in formset.deleted_objects:
            obj.delete()
        formset.save_m2m()


@admin.register(Note)
class NoteAdmin(admin.ModelAdmin):
    list_display = ["__str__", "contact", "author", "created_at"]
    list_select_related = ["contact", "author"]
    search_fields = ["body", "contact__name", "contact__phone"]
    autocomplete_fields = ["contact", "author"]
    list_filter = ["created_at"]


class StageInline(admin.TabularInline):
    model = Stage
    fields = ["position", "name", "probability", "kind"]
    extra = 0


@admin.register(Pipeline)
class PipelineAdmin(admin.ModelAdmin):
    list_display = ["name", "position", "stage_count", "deal_count"]
    search_fields = ["name"]
    inlines = [StageInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Pipeline]:
        return (
            super()
            .get_queryset(request)
            .annotate(stage_count=Count("stages", distinct=True), deal_count=Count("deals", distinct=True))
        )

    @admin.display(description="Stages")
    def stage_count(self, obj: Any) -> int:
        return int(obj.stage_count)

    @admin.display(description="Deals")
    def deal_count(self, obj: Any) -> int:
        return int(obj.deal_count)


@admin.register(Stage)
class StageAdmin(admin.ModelAdmin):
    list_display = ["name", "pipeline", "position", "probability", "kind"]
    list_filter = ["pipeline", "kind"]
    list_select_related = ["pipeline"]
    search_fields = ["name", "pipeline__name"]


class StageHistoryInline(admin.TabularInline):
    model = DealStageChange
    fields = ["changed_at", "from_stage", "to_stage", "changed_by"]
    readonly_fields = ["changed_at", "from_stage", "to_stage", "changed_by"]
    extra = 0
    max_num = 0
    can_delete = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[DealStageChange]:
        return super().get_queryset(request).select_related("from_stage", "to_stage", "changed_by")


class DealTaskInline(ContactTaskInline):
    fk_name = "deal"


@admin.register(Deal)
class DealAdmin(admin.ModelAdmin):
    list_display = [
        "title",
        "contact",
        "company",
        "value",
        "currency",
        "stage",
        "status",
        "owner",
        "expected_close_date",
    ]
    list_filter = ["status", "pipeline", "stage", "currency"]
    list_select_related = ["contact", "company", "stage__pipeline", "owner"]
    search_fields = ["title", "contact__name", "company__name"]
    autocomplete_fields = ["contact", "company", "owner"]
    readonly_fields = ["status", "closed_at", "created_at", "updated_at"]
    inlines = [DealTaskInline, StageHistoryInline]

    def save_model(self, request: HttpRequest, obj: Deal, form: Any, change: bool) -> None:
        # The stage goes through the service so that history and won/lost stay right.
        if change and "stage" in form.changed_data:
            new_stage = obj.stage
            obj.stage_id = form.initial["stage"]
            super().save_model(request, obj, form, change)
            try:
                services.move_deal(deal=obj, stage=new_stage, by=request.user)
            except ServiceError as exc:
                messages.error(request, exc.message)
            return
        if not change:
            obj.status = services.status_for(obj.stage)
        super().save_model(request, obj, form, change)
        if not change:
            DealStageChange.objects.create(deal=obj, to_stage=obj.stage, changed_by=request.user)  # type: ignore[misc]


@admin.register(DealStageChange)
class DealStageChangeAdmin(admin.ModelAdmin):
    list_display = ["deal", "from_stage", "to_stage", "changed_by", "changed_at"]
    list_select_related = ["deal", "from_stage__pipeline", "to_stage__pipeline", "changed_by"]
    search_fields = ["deal__title"]
    list_filter = ["changed_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class OverdueFilter(admin.SimpleListFilter):
    title = "overdue"
    parameter_name = "overdue"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Overdue")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return selectors.overdue(queryset) if self.value() == "yes" else queryset


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ["title", "due_at", "assignee", "contact", "deal", "done", "is_overdue"]
    list_filter = [OverdueFilter, "done", "assignee"]
    list_select_related = ["assignee", "contact", "deal"]
    search_fields = ["title", "contact__name"]
    autocomplete_fields = ["assignee", "contact", "deal"]
    list_editable = ["done"]

    @admin.display(boolean=True, description="Overdue")
    def is_overdue(self, obj: Task) -> bool:
        return obj.is_overdue


class ApiKeyForm(forms.ModelForm):
    """A new key: personal (acts as the admin making it) or integration (a role from supervisor up to the
    maker's). The choice is checked by crm.services before anything is made."""

    kind = forms.ChoiceField(choices=ApiKey.Kind.choices, initial=ApiKey.Kind.INTEGRATION)
    role = forms.ChoiceField(choices=(), required=False, help_text="Integration keys only")
    expires_in_days = forms.IntegerField(required=False, min_value=1, help_text="Empty: never expires")

    # Set per request by ApiKeyAdmin.get_form.
    request_user: Any = None
    request_role: str | None = None

    class Meta:
        model = ApiKey
        fields = ["name"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        role_field = self.fields["role"]
        assert isinstance(role_field, forms.ChoiceField)
        role_field.choices = [("", "—"), *integration_role_choices(self.request_role)]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        kind = data.get("kind")
        if kind:
            personal = kind == ApiKey.Kind.PERSONAL
            try:
                services.check_api_key_identity(
                    kind=kind,
                    role=None if personal else (data.get("role") or None),
                    user=self.request_user if personal else None,
                    created_by=self.request_user,
                    by_role=self.request_role,
                )
            except ServiceError as exc:
                self.add_error(exc.field if exc.field in self.fields else None, exc.message)
        return data


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "prefix",
        "kind",
        "user",
        "role",
        "created_by",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["kind", "role", ("revoked_at", admin.EmptyFieldListFilter)]
    list_select_related = ["created_by", "user"]
    search_fields = ["name", "prefix"]
    actions = ["rotate", "revoke"]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = type(
                "ApiKeyAddForm",
                (ApiKeyForm,),
                {"request_user": request.user, "request_role": selectors.role_of_user(request.user)},
            )
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ["name", "kind", "role", "expires_in_days"]
        return [
            "name",
            "prefix",
            "kind",
            "user",
            "role",
            "created_by",
            "created_at",
            "expires_at",
            "last_used_at",
            "revoked_at",
            "rotated_from",
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return []
        # A key's identity is what it was made with: a new identity is a new key.
        return [
            "prefix",
            "kind",
            "user",
            "role",
            "created_by",
            "created_at",
            "expires_at",
            "last_used_at",
            "revoked_at",
            "rotated_from",
        ]

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        personal = form.cleaned_data["kind"] == ApiKey.Kind.PERSONAL
        issued = services.create_api_key(
            name=form.cleaned_data["name"],
            kind=form.cleaned_data["kind"],
            role=None if personal else (form.cleaned_data.get("role") or None),
            user=request.user if personal else None,
            expires_in_days=form.cleaned_data.get("expires_in_days"),
            created_by=request.user,
            by_role=selectors.role_of_user(request.user),
        )
        obj.pk = issued.api_key.pk
        obj.__dict__.update({k: v for k, v in issued.api_key.__dict__.items() if not k.startswith("_")})
        messages.warning(request, f"Copy the key now, it is shown only once: {issued.raw}")

    @admin.action(description="Rotate: issue a new key (the old one works until revoked)")
    def rotate(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for key in queryset:
            try:
                issued = services.rotate_api_key(
                    api_key=key, created_by=request.user, by_role=selectors.role_of_user(request.user)
                )
            except ServiceError as exc:
                messages.error(request, f"{key}: {exc.message}")
                continue
            messages.warning(request, f"New key for {key.name}, shown only once: {issued.raw}")

    @admin.action(description="Revoke")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        role = selectors.role_of_user(request.user)
        for key in queryset:
            services.revoke_api_key(api_key=key, by=request.user, by_role=role)
        count = queryset.count()
        messages.success(request, ngettext("%d key revoked.", "%d keys revoked.", count) % count)


class RejectionInline(admin.TabularInline):
    model = ImportRejection
    fields = ["row_number", "reason", "data"]
    readonly_fields = ["row_number", "reason", "data"]
    extra = 0
    max_num = 0
    can_delete = False


@admin.register(ContactImport)
class ContactImportAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "filename",
        "status",
        "processed_rows",
        "total_rows",
        "created_count",
        "updated_count",
        "rejected_count",
        "created_by",
        "created_at",
    ]
    list_filter = ["status"]
    list_select_related = ["created_by"]
    search_fields = ["filename"]
    exclude = ["content"]
    readonly_fields = [
        "filename",
        "status",
        "total_rows",
        "processed_rows",
        "created_count",
        "updated_count",
        "rejected_count",
        "error",
        "created_by",
        "created_at",
        "finished_at",
    ]
    inlines = [RejectionInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Imports start from the contacts page or the API, which enqueue the job.
        return False
