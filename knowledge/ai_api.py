"""API v1 for the AI agent: its settings (`/api/v1/ai/settings/`, owners and admins), the copilot
(`/api/v1/ai/conversations/{id}/copilot/`, any agent who sees the conversation) and saving an agent's
answer as an FAQ suggestion. Thin: parse, call knowledge's services, answer."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from conversations.selectors import viewer_for_request
from core.errors import ServiceError
from crm.permissions import RolePermission, acting_user
from knowledge import ai_settings, copilot, learning
from knowledge.models import AgentSettings

ADMIN = "admin"


class AISettingsSerializer(serializers.Serializer):
    enabled = serializers.BooleanField()
    instructions = serializers.CharField(allow_blank=True, help_text="Persona and instructions for the LLM.")
    handoff_message = serializers.CharField(help_text="Sent to the customer when the agent hands over.")
    hours = serializers.ChoiceField(choices=AgentSettings.Hours.choices)
    max_replies = serializers.IntegerField(help_text="AI replies per conversation before it hands over.")
    threshold = serializers.FloatField(
        allow_null=True,
        help_text="Lowest retrieval score (0..1) a passage needs to answer; null: the default.",
    )
    effective_threshold = serializers.FloatField(read_only=True)
    blocked_topics = serializers.CharField(allow_blank=True, help_text="One per line: handed over at once.")
    llm_enabled = serializers.BooleanField()
    llm_base_url = serializers.CharField(allow_blank=True, help_text="An OpenAI-compatible base URL.")
    llm_model = serializers.CharField(allow_blank=True)
    llm_api_key = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        help_text="Write-only: stored encrypted, never returned.",
    )
    llm_api_key_set = serializers.BooleanField(read_only=True)
    llm_configured = serializers.BooleanField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)


class AISettingsView(APIView):
    permission_classes = [RolePermission]
    required_roles = {"read": ADMIN, "write": ADMIN}

    @extend_schema(summary="The AI agent's settings", responses={200: AISettingsSerializer})
    def get(self, request: Request) -> Response:
        return Response(AISettingsSerializer(ai_settings.as_dict(ai_settings.load_agent_settings())).data)

    @extend_schema(
        summary="Change the AI agent's settings",
        description="Any subset of the fields. `llm_api_key` is write-only (an empty string clears it).",
        request=AISettingsSerializer,
        responses={200: AISettingsSerializer},
    )
    def patch(self, request: Request) -> Response:
        if not isinstance(request.data, dict):
            raise ServiceError("invalid_body", "Expected a JSON object.")
        settings = ai_settings.update_agent_settings(changes=dict(request.data), by=acting_user(request))
        return Response(AISettingsSerializer(ai_settings.as_dict(settings)).data)


class CopilotSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=copilot.ACTIONS)
    draft = serializers.CharField(required=False, allow_blank=True, max_length=4096)
    message_id = serializers.IntegerField(required=False)
    # Not `style`: DRF's fields use that attribute themselves.
    tone = serializers.ChoiceField(choices=copilot.STYLES, required=False, help_text="For rewrite.")
    language = serializers.CharField(required=False, max_length=20)


class CopilotView(APIView):
    """Text for the composer: nothing is sent."""

    permission_classes = [RolePermission]

    @extend_schema(
        summary="Ask the copilot (suggest, summarise, translate, rewrite)",
        request=CopilotSerializer,
        responses={200: OpenApiTypes.OBJECT},
    )
    def post(self, request: Request, pk: int) -> Response:
        data = _valid(CopilotSerializer, request.data)
        if "tone" in data:
            data["style"] = data.pop("tone")
        result = copilot.run(viewer=viewer_for_request(request), conversation_id=pk, **data)
        return Response({"text": result.text, "model": result.model})


class SuggestFaqSerializer(serializers.Serializer):
    message_id = serializers.IntegerField(help_text="The agent's reply to save as the answer.")


class SuggestFaqView(APIView):
    permission_classes = [RolePermission]

    @extend_schema(
        summary="Save an agent's answer as an FAQ suggestion",
        request=SuggestFaqSerializer,
        responses={201: OpenApiTypes.OBJECT},
    )
    def post(self, request: Request, pk: int) -> Response:
        data = _valid(SuggestFaqSerializer, request.data)
        faq = learning.suggest_faq(
            viewer=viewer_for_request(request), conversation_id=pk, message_id=data["message_id"]
        )
        return Response(
            {"id": faq.pk, "question": faq.question, "answer": faq.answer, "status": faq.status}, status=201
        )


def _valid(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)
