"""API representations. Serializers check shapes and types; the rules live in crm.services."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from crm.models import (
    Agent,
    AttributeDefinition,
    Company,
    Contact,
    ContactImport,
    Deal,
    DealStageChange,
    ImportRejection,
    Note,
    Pipeline,
    Stage,
    Tag,
    Task,
    Team,
)


def agent_users() -> Any:
    return get_user_model().objects.filter(agent__isnull=False)


@extend_schema_field({"type": "array", "items": {"type": "string"}, "example": ["vip", "lead"]})
class TagNamesField(serializers.ListField):
    """Tags by name: unknown names are created, case is matched with existing tags."""

    child = serializers.CharField(max_length=50)

    def to_representation(self, data: Any) -> list[str]:
        return [tag.name for tag in data.all()]


class TagSerializer(serializers.ModelSerializer):
    class Meta:
        model = Tag
        fields = ["id", "name", "color"]


class CompanySerializer(serializers.ModelSerializer):
    contact_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Company
        fields = ["id", "name", "domain", "contact_count", "created_at", "updated_at"]


class AttributeDefinitionSerializer(serializers.ModelSerializer):
    choices = serializers.ListField(child=serializers.CharField(max_length=100), required=False)

    class Meta:
        model = AttributeDefinition
        fields = ["id", "key", "label", "type", "choices", "required", "position", "created_at"]
        # The type decides how every value is checked and stored, so it is chosen, never defaulted.
        extra_kwargs: dict[str, Any] = {"type": {"required": True}}


class ContactSerializer(serializers.ModelSerializer):
    phone = serializers.CharField(max_length=40, help_text="Any format; stored and returned as E.164")
    tags = TagNamesField(required=False)
    company = serializers.PrimaryKeyRelatedField(
        queryset=Company.objects.all(), required=False, allow_null=True
    )
    company_name = serializers.CharField(source="company.name", read_only=True, default=None, allow_null=True)
    owner = serializers.PrimaryKeyRelatedField(queryset=agent_users(), required=False, allow_null=True)
    attributes = serializers.DictField(required=False, help_text="Keys of the attribute definitions")
    username = serializers.CharField(
        read_only=True, help_text="The contact's WhatsApp username, without the @; empty if none"
    )
    bsuid = serializers.CharField(
        source="whatsapp_user_id",
        read_only=True,
        help_text="The latest WhatsApp business-scoped user id seen for the contact; empty if none",
    )

    class Meta:
        model = Contact
        fields = [
            "id",
            "name",
            "phone",
            "wa_id",
            "username",
            "bsuid",
            "email",
            "company",
            "company_name",
            "tags",
            "attributes",
            "owner",
            "marketing_consent",
            "marketing_consent_at",
            "blocked",
            "last_inbound_at",
            "last_outbound_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "wa_id",
            "marketing_consent_at",
            "last_inbound_at",
            "last_outbound_at",
            "created_at",
            "updated_at",
        ]
        # Uniqueness is the service's rule (it compares normalised numbers).
        validators: list[Any] = []
        extra_kwargs: dict[str, Any] = {"email": {"validators": []}}


class MergeSerializer(serializers.Serializer):
    other = serializers.IntegerField(help_text="The contact folded into this one and then deleted")


class NoteSerializer(serializers.ModelSerializer):
    author_name = serializers.SerializerMethodField()

    class Meta:
        model = Note
        fields = ["id", "contact", "body", "author", "author_name", "created_at", "updated_at"]
        read_only_fields = ["author", "created_at", "updated_at"]

    def get_author_name(self, note: Note) -> str | None:
        author = note.author
        return (author.get_full_name() or author.email) if author else None

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        if self.instance is not None and not isinstance(self.instance, list | tuple):
            fields["contact"].read_only = True
        return fields


class StageSerializer(serializers.ModelSerializer):
    class Meta:
        model = Stage
        fields = ["id", "pipeline", "name", "position", "probability", "kind"]
        validators: list[Any] = []


class NestedStageSerializer(serializers.ModelSerializer):
    class Meta:
        model = Stage
        fields = ["id", "name", "position", "probability", "kind"]


class PipelineSerializer(serializers.ModelSerializer):
    stages = NestedStageSerializer(many=True, read_only=True)

    class Meta:
        model = Pipeline
        fields = ["id", "name", "position", "stages", "created_at"]
        read_only_fields = ["position", "created_at"]
        validators: list[Any] = []
        extra_kwargs: dict[str, Any] = {"name": {"validators": []}}


class DealSerializer(serializers.ModelSerializer):
    contact = serializers.PrimaryKeyRelatedField(
        queryset=Contact.objects.all(), required=False, allow_null=True
    )
    company = serializers.PrimaryKeyRelatedField(
        queryset=Company.objects.all(), required=False, allow_null=True
    )
    owner = serializers.PrimaryKeyRelatedField(queryset=agent_users(), required=False, allow_null=True)
    pipeline = serializers.PrimaryKeyRelatedField(queryset=Pipeline.objects.all(), required=False)
    stage = serializers.PrimaryKeyRelatedField(queryset=Stage.objects.all(), required=False)
    stage_name = serializers.CharField(source="stage.name", read_only=True)
    value = serializers.DecimalField(max_digits=14, decimal_places=2, min_value=0, required=False)  # type: ignore[arg-type]

    class Meta:
        model = Deal
        fields = [
            "id",
            "title",
            "contact",
            "company",
            "value",
            "currency",
            "owner",
            "pipeline",
            "stage",
            "stage_name",
            "expected_close_date",
            "status",
            "closed_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["status", "closed_at", "created_at", "updated_at"]


class MoveDealSerializer(serializers.Serializer):
    stage = serializers.PrimaryKeyRelatedField(queryset=Stage.objects.all())


class StageChangeSerializer(serializers.ModelSerializer):
    class Meta:
        model = DealStageChange
        fields = ["id", "from_stage", "to_stage", "changed_by", "changed_at"]


class TaskSerializer(serializers.ModelSerializer):
    assignee = serializers.PrimaryKeyRelatedField(queryset=agent_users(), required=False, allow_null=True)
    contact = serializers.PrimaryKeyRelatedField(
        queryset=Contact.objects.all(), required=False, allow_null=True
    )
    deal = serializers.PrimaryKeyRelatedField(queryset=Deal.objects.all(), required=False, allow_null=True)
    is_overdue = serializers.BooleanField(read_only=True)

    class Meta:
        model = Task
        fields = [
            "id",
            "title",
            "description",
            "due_at",
            "assignee",
            "contact",
            "deal",
            "done",
            "done_at",
            "is_overdue",
            "created_by",
            "created_at",
        ]
        read_only_fields = ["done_at", "created_by", "created_at"]


class AgentSerializer(serializers.ModelSerializer):
    user_id = serializers.IntegerField(read_only=True)
    email = serializers.EmailField(source="user.email", read_only=True)
    name = serializers.SerializerMethodField()
    teams: Any = serializers.PrimaryKeyRelatedField(many=True, read_only=True)

    class Meta:
        model = Agent
        fields = ["id", "user_id", "email", "name", "role", "availability", "capacity", "teams", "created_at"]
        read_only_fields = fields

    def get_name(self, agent: Agent) -> str:
        return agent.user.get_full_name()


class AgentUpdateSerializer(serializers.Serializer):
    availability = serializers.ChoiceField(choices=Agent.Availability.choices, required=False)
    capacity = serializers.IntegerField(min_value=0, max_value=1000, allow_null=True, required=False)


class TeamSerializer(serializers.ModelSerializer):
    members = serializers.PrimaryKeyRelatedField(many=True, queryset=Agent.objects.all(), required=False)

    class Meta:
        model = Team
        fields = ["id", "name", "description", "members", "created_at"]
        read_only_fields = ["created_at"]
        validators: list[Any] = []
        extra_kwargs: dict[str, Any] = {"name": {"validators": []}}


class ContactImportSerializer(serializers.ModelSerializer):
    file = serializers.FileField(write_only=True, help_text="UTF-8 CSV with a 'phone' column")
    percent = serializers.IntegerField(read_only=True)

    class Meta:
        model = ContactImport
        fields = [
            "id",
            "file",
            "filename",
            "status",
            "total_rows",
            "processed_rows",
            "percent",
            "created_count",
            "updated_count",
            "rejected_count",
            "error",
            "created_at",
            "finished_at",
        ]
        read_only_fields = [f for f in fields if f != "file"]


class ImportRejectionSerializer(serializers.ModelSerializer):
    class Meta:
        model = ImportRejection
        fields = ["row_number", "reason", "data"]
