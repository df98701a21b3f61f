"""Forms for the staff pages. They parse input; crm.services applies the rules (errors come back here)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Model
from django.forms.utils import flatatt
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe

from core.errors import ServiceError
from crm import selectors
from crm.models import Agent, ApiKey, AttributeDefinition, Company, Contact, Deal, Pipeline, Stage, Team
from crm.services.regions import region_choices


def agent_users() -> Any:
    return get_user_model().objects.filter(agent__isnull=False).order_by("first_name", "email")


class UserChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return str(obj.get_full_name() or obj.email)


class TypedText(str):
    """What was typed in a picker whose id input is empty: no script ran, or nothing was picked."""


class PickerWidget(forms.Widget):
    """A searchable picker (templates/crm/_picker.html, static/js/picker.js): a text input asks
    `search_url` (htmx) for options; picking one puts its id in a hidden input named after the field.

    Without a script, the typed text is submitted as `<name>_search` and PickerField resolves it when
    exactly one record matches. `fills` names another picker of the form that a picked option may
    prefill (a deal's company from its contact's).
    """

    template_name = "crm/_picker.html"

    def __init__(self, search_url: str, *, fills: str = "", attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs)
        self.search_url = search_url  # a URL name, reversed when rendered (URLconfs load after forms)
        self.fills = fills

    def value_from_datadict(self, data: Any, files: Any, name: str) -> Any:
        value = data.get(name)
        if value:
            return value
        typed = (data.get(f"{name}_search") or "").strip()
        return TypedText(typed) if typed else None

    def value_omitted_from_data(self, data: Any, files: Any, name: str) -> bool:
        return name not in data and f"{name}_search" not in data

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        chosen, label = "", ""
        if isinstance(value, TypedText):
            label = str(value)
        elif value not in (None, ""):
            choices: Any = getattr(self, "choices", None)  # ModelChoiceField's iterator: queryset, field
            pk = str(getattr(value, "pk", value))
            found = None
            if choices is not None and pk.isascii() and pk.isdigit() and len(pk) < 19:
                found = choices.queryset.filter(pk=pk).first()
            if found is not None:
                chosen, label = str(found.pk), choices.field.label_from_instance(found)
        widget = context["widget"]
        widget.update(
            {"chosen": chosen, "label": label, "url": reverse(self.search_url), "fills": self.fills}
        )
        widget["options_id"] = f"{widget['attrs'].get('id') or name}-options"
        widget["attrs_html"] = flatatt(widget["attrs"])
        return context

    def render(
        self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None
    ) -> SafeString:
        # The project's template engine (templates/crm/_picker.html), not the form renderer's own, which
        # sees only the apps' and Django's widget templates. The template escapes; the result is markup.
        return mark_safe(render_to_string(self.template_name, self.get_context(name, value, attrs)))  # noqa: S308


class PickerField(forms.ModelChoiceField):
    """A ModelChoiceField picked by searching; the id must be one of `queryset` (this tenant's schema),
    so an id from another tenant or one that does not exist is a form error like any invalid choice."""

    def __init__(
        self,
        queryset: Any,
        *,
        search_url: str,
        search: Callable[[str], Sequence[Model]],
        noun: str,
        fills: str = "",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("widget", PickerWidget(search_url, fills=fills))
        kwargs.setdefault(
            "error_messages", {"invalid_choice": f"Pick a {noun} from the list: that one does not exist."}
        )
        super().__init__(queryset, **kwargs)
        self.search = search
        self.noun = noun
        # The model's own plural ("companies", not "companys").
        self.widget.attrs.setdefault("placeholder", f"Search {queryset.model._meta.verbose_name_plural}")

    def to_python(self, value: Any) -> Any:
        if isinstance(value, TypedText):
            matches = list(self.search(str(value))[:2])
            if len(matches) == 1:
                return super().to_python(matches[0].pk)
            typed = str(value)[:100]
            problem = f"No {self.noun} matches “{typed}”." if not matches else f"Several match “{typed}”."
            raise forms.ValidationError(problem + " Pick one from the list.", code="invalid_choice")
        return super().to_python(value)


class ServiceForm(forms.Form):
    """Shows a ServiceError next to its field (or at the top)."""

    def add_service_error(self, error: ServiceError) -> None:
        field = (error.field or "").split(".")[0]
        if field == "attributes" and error.field:
            field = "attr_" + error.field.split(".", 1)[1]
        # The service's code stays with the message, so a page can say which rule refused the input.
        self.add_error(
            field if field in self.fields else None, forms.ValidationError(error.message, code=error.code)
        )


class ContactForm(ServiceForm):
    name = forms.CharField(max_length=200, required=False)
    phone = forms.CharField(max_length=40, help_text="Any format; with the country code unless local")
    email = forms.EmailField(required=False)
    company = forms.ModelChoiceField(queryset=Company.objects.order_by("name"), required=False)
    tags = forms.CharField(required=False, help_text="Comma-separated")
    owner = UserChoiceField(queryset=agent_users(), required=False)
    marketing_consent = forms.ChoiceField(choices=Contact.MarketingConsent.choices)
    blocked = forms.BooleanField(required=False)

    def __init__(self, *args: Any, phone_optional: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A contact known by its WhatsApp user id (a username hides the number) may have no number.
        self.fields["phone"].required = not phone_optional
        self.definitions = list(AttributeDefinition.objects.all())
        for d in self.definitions:
            name = f"attr_{d.key}"
            if d.type == AttributeDefinition.Type.CHOICE:
                self.fields[name] = forms.ChoiceField(
                    label=d.label, required=False, choices=[("", "—"), *((c, c) for c in d.choices)]
                )
            elif d.type == AttributeDefinition.Type.BOOLEAN:
                self.fields[name] = forms.ChoiceField(
                    label=d.label, required=False, choices=[("", "—"), ("true", "Yes"), ("false", "No")]
                )
            elif d.type == AttributeDefinition.Type.DATE:
                self.fields[name] = forms.CharField(
                    label=d.label, required=False, widget=forms.DateInput(attrs={"type": "date"})
                )
            else:
                self.fields[name] = forms.CharField(label=d.label, required=False)

    @classmethod
    def initial_for(cls, contact: Contact) -> dict[str, Any]:
        initial: dict[str, Any] = {
            "name": contact.name,
            "phone": contact.phone,
            "email": contact.email,
            "company": contact.company_id,
            "tags": ", ".join(t.name for t in contact.tags.all()),
            "owner": contact.owner_id,
            "marketing_consent": contact.marketing_consent,
            "blocked": contact.blocked,
        }
        for key, value in contact.attributes.items():
            initial[f"attr_{key}"] = str(value).lower() if isinstance(value, bool) else value
        return initial

    def service_kwargs(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        attributes = {d.key: data.pop(f"attr_{d.key}", "") for d in self.definitions}
        data.pop("tags")
        data["attributes"] = attributes
        return data

    def tag_names(self) -> list[str]:
        return [t.strip() for t in self.cleaned_data.get("tags", "").split(",") if t.strip()]


class ContactFieldForm(ServiceForm):
    """One field of ContactForm on its own, for editing a contact in place (the inbox's contact panel).

    `field` is a ContactForm field name: a detail, or `attr_<key>` for a custom attribute (its type's
    widget comes from ContactForm; crm.services.clean_attributes checks the value).
    """

    DETAILS = ("name", "email", "company", "owner", "marketing_consent", "blocked")

    def __init__(self, field: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        whole = ContactForm()
        if field not in self.DETAILS and not (field.startswith("attr_") and field in whole.fields):
            raise KeyError(field)
        self.field_name = field
        self.fields[field] = whole.fields[field]
        attrs = self.fields[field].widget.attrs
        # The form replaces the value that was clicked: the focus goes straight to its input, and an
        # error shown under it (only a bound form has one) is read with it.
        attrs["autofocus"] = True
        if self.is_bound:
            attrs["aria-describedby"] = f"cf-{field}-error"

    @property
    def bound_field(self) -> forms.BoundField:
        return self[self.field_name]

    def service_kwargs(self) -> dict[str, Any]:
        value = self.cleaned_data[self.field_name]
        if self.field_name.startswith("attr_"):
            return {"attributes": {self.field_name[5:]: value}}
        return {self.field_name: value}


class NoteForm(ServiceForm):
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=10000)


def contact_picker(**kwargs: Any) -> PickerField:
    return PickerField(
        Contact.objects.all(),
        search_url="crm:pick-contacts",
        search=selectors.pick_contacts,
        noun="contact",
        **kwargs,
    )


def company_picker(**kwargs: Any) -> PickerField:
    return PickerField(
        Company.objects.order_by("name"),
        search_url="crm:pick-companies",
        search=selectors.pick_companies,
        noun="company",
        **kwargs,
    )


def deal_picker(**kwargs: Any) -> PickerField:
    return PickerField(
        Deal.objects.all(), search_url="crm:pick-deals", search=selectors.pick_deals, noun="deal", **kwargs
    )


class MergeForm(ServiceForm):
    other = contact_picker(label="Contact")


class CompanyForm(ServiceForm):
    name = forms.CharField(max_length=200)
    domain = forms.CharField(max_length=253, required=False)


class DealForm(ServiceForm):
    title = forms.CharField(max_length=200)
    stage = forms.ModelChoiceField(queryset=Stage.objects.order_by("pipeline__position", "position"))
    contact = contact_picker(required=False, fills="company")
    company = company_picker(required=False)
    value = forms.DecimalField(max_digits=14, decimal_places=2, min_value=0, initial=0)
    currency = forms.CharField(max_length=3, initial="USD")
    owner = UserChoiceField(queryset=agent_users(), required=False)
    expected_close_date = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))


class TaskForm(ServiceForm):
    title = forms.CharField(max_length=200)
    due_at = forms.DateTimeField(required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    assignee = UserChoiceField(queryset=agent_users(), required=False)
    contact = contact_picker(required=False)
    deal = deal_picker(required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """A relation given in `initial` is the page's own record (a contact's or a deal's page adds tasks
        to it): a hidden input, not a picker. The task list leaves both to pick."""
        super().__init__(*args, **kwargs)
        for name in ("contact", "deal"):
            if name in self.initial:
                self.fields[name].widget = forms.HiddenInput()


class InviteForm(ServiceForm):
    email = forms.EmailField()
    name = forms.CharField(max_length=150, required=False)
    role = forms.ChoiceField(choices=Agent.Role.choices, initial=Agent.Role.AGENT)


class RoleForm(ServiceForm):
    role = forms.ChoiceField(choices=Agent.Role.choices)


class AvailabilityForm(ServiceForm):
    availability = forms.ChoiceField(choices=Agent.Availability.choices)


class PhoneRegionForm(ServiceForm):
    phone_region = forms.ChoiceField(
        label="Country of numbers written without a country code",
        required=False,
        help_text="Imports, searches and forms read such numbers as this country's.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = cast(forms.ChoiceField, self.fields["phone_region"])
        field.choices = [("", "None: every number needs its country code"), *region_choices()]


class TeamForm(ServiceForm):
    name = forms.CharField(max_length=100)
    description = forms.CharField(max_length=300, required=False)
    members = forms.ModelMultipleChoiceField(
        queryset=Agent.objects.select_related("user"), required=False, widget=forms.CheckboxSelectMultiple
    )

    @classmethod
    def initial_for(cls, team: Team) -> dict[str, Any]:
        return {"name": team.name, "description": team.description, "members": list(team.members.all())}


KEY_ROLE_RANK = {Agent.Role.SUPERVISOR: 2, Agent.Role.ADMIN: 3, Agent.Role.OWNER: 4}
KEY_MANAGERS = (Agent.Role.ADMIN, Agent.Role.OWNER)


def integration_role_choices(maker_role: str | None) -> list[tuple[str, str]]:
    """The roles an integration key made by `maker_role` may have: supervisor and up, none above theirs."""
    if maker_role not in KEY_MANAGERS:
        return []
    rank = KEY_ROLE_RANK[Agent.Role(maker_role)]
    allowed = {role for role, role_rank in KEY_ROLE_RANK.items() if role_rank <= rank}
    return [(value, label) for value, label in Agent.Role.choices if value in allowed]


class ApiKeyForm(ServiceForm):
    """Settings → API keys. Everyone makes personal keys (acting as themselves); admins and owners also
    make integration keys, with a role from supervisor up to their own."""

    name = forms.CharField(max_length=100)
    kind = forms.ChoiceField(
        choices=ApiKey.Kind.choices,
        initial=ApiKey.Kind.PERSONAL,
        help_text="Personal: acts as you, sees what you see. Integration: tenant-wide, with its own role.",
    )
    role = forms.ChoiceField(choices=(), required=False, help_text="Integration keys only")
    expires_in_days = forms.IntegerField(
        required=False, min_value=1, max_value=3650, help_text="Empty: never"
    )

    def __init__(self, *args: Any, maker_role: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if maker_role in KEY_MANAGERS:
            role_field = cast(forms.ChoiceField, self.fields["role"])
            role_field.choices = [("", "—"), *integration_role_choices(maker_role)]
        else:
            # Agents and supervisors make personal keys only.
            kind_field = cast(forms.ChoiceField, self.fields["kind"])
            kind_field.choices = [(ApiKey.Kind.PERSONAL.value, ApiKey.Kind.PERSONAL.label)]
            del self.fields["role"]

    def service_kwargs(self, *, user: Any) -> dict[str, Any]:
        data = self.cleaned_data
        personal = data["kind"] == ApiKey.Kind.PERSONAL
        return {
            "name": data["name"],
            "kind": data["kind"],
            "role": None if personal else (data.get("role") or None),
            "user": user if personal else None,
            "expires_in_days": data.get("expires_in_days"),
        }


class ImportForm(ServiceForm):
    file = forms.FileField(
        help_text="UTF-8 CSV with a 'phone' column; name, email, company, tags, attributes"
    )


class PipelineChoiceForm(forms.Form):
    pipeline = forms.ModelChoiceField(queryset=Pipeline.objects.all(), required=False)


class AttributeDefinitionForm(ServiceForm):
    key = forms.SlugField(max_length=50)
    label = forms.CharField(max_length=100)
    type = forms.ChoiceField(choices=AttributeDefinition.Type.choices)
    choices = forms.CharField(required=False, help_text="For a choice attribute: comma-separated")
    required = forms.BooleanField(required=False)


class TaskFilterForm(forms.Form):
    show = forms.ChoiceField(
        choices=[("open", "Open"), ("overdue", "Overdue"), ("done", "Done"), ("all", "All")], required=False
    )
    mine = forms.BooleanField(required=False)
