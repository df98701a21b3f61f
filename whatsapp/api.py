"""API v1 routes of the Cloud API channel (mounted under /api/v1/ on tenant hosts): its message templates."""

from __future__ import annotations

from django.db.models import QuerySet
from rest_framework import generics, serializers

from whatsapp.models import MessageTemplate


class TemplateSerializer(serializers.ModelSerializer):
    body_placeholders = serializers.SerializerMethodField()
    header_format = serializers.SerializerMethodField()
    button_placeholders = serializers.SerializerMethodField()

    class Meta:
        model = MessageTemplate
        fields = [
            "id",
            "waba_id",
            "name",
            "language",
            "category",
            "status",
            "parameter_format",
            "components",
            "body_placeholders",
            "header_format",
            "button_placeholders",
        ]

    def get_body_placeholders(self, obj: MessageTemplate) -> list[str]:
        return obj.body_placeholders()

    def get_header_format(self, obj: MessageTemplate) -> str | None:
        return obj.header_format()

    def get_button_placeholders(self, obj: MessageTemplate) -> dict[int, list[str]]:
        return obj.button_placeholders()


class TemplateListView(generics.ListAPIView):
    """The message templates of the tenant's numbers (?status=APPROVED for the sendable ones)."""

    serializer_class = TemplateSerializer
    filterset_fields = ["status", "language", "waba_id", "name"]
    ordering = ["name", "language", "id"]

    def get_queryset(self) -> QuerySet[MessageTemplate]:
        return MessageTemplate.objects.order_by("name", "language", "id")
