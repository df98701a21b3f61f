"""API v1 of team operations: the CSAT survey (GET/PATCH /api/v1/settings/csat/), macros
(/api/v1/macros/ and /{id}/) and running one (POST /api/v1/conversations/{id}/macros/{macro_id}/run/)."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from conversations import selectors
from conversations.api import ConversationSerializer
from conversations.models import Conversation, CsatSettings, Macro
from conversations.services import macros
from conversations.services.csat import update_csat_settings
from core.api_schema import ErrorResponseSerializer
from crm.permissions import RolePermission


class CsatSettingsSerializer(serializers.ModelSerializer[CsatSettings]):
    question = serializers.CharField(max_length=1024, allow_blank=False)
    comment_prompt = serializers.CharField(max_length=1024, allow_blank=True)
    thanks_text = serializers.CharField(max_length=1024, allow_blank=True)
    comment_minutes = serializers.IntegerField(min_value=1, max_value=1440)

    class Meta:
        model = CsatSettings
        fields = ["enabled", "question", "ask_comment", "comment_prompt", "comment_minutes", "thanks_text"]


class CsatSettingsView(APIView):
    """GET: the customer-satisfaction survey's settings. PATCH: change some of them (admins and owners).
    When enabled, resolving a conversation sends the customer a 1-5 rating list (within the 24-hour
    window, never to blocked or opted-out contacts, once per resolution)."""

    permission_classes = [RolePermission]
    required_roles = {"read": "admin", "write": "admin"}

    @extend_schema(responses={200: CsatSettingsSerializer})
    def get(self, request: Request) -> Response:
        return Response(CsatSettingsSerializer(CsatSettings.load()).data)

    @extend_schema(
        request=CsatSettingsSerializer,
        responses={200: CsatSettingsSerializer, 400: ErrorResponseSerializer},
    )
    def patch(self, request: Request) -> Response:
        form = CsatSettingsSerializer(data=request.data, partial=True)
        form.is_valid(raise_exception=True)
        changes: dict[str, Any] = dict(form.validated_data)
        return Response(CsatSettingsSerializer(update_csat_settings(**changes)).data)


# --- Macros: /api/v1/macros/ (read: any agent; write: owners and admins) and running one on a conversation


class MacroSerializer(serializers.ModelSerializer[Macro]):
    actions = serializers.ListField(
        child=serializers.DictField(),
        help_text='in order, each one of {"type": "reply", "canned": saved reply id}, '
        '{"type": "tags", "tags": [names]}, {"type": "team", "team": id}, '
        '{"type": "status", "status": "open|pending|resolved"}, {"type": "snooze", "minutes": n}',
    )

    class Meta:
        model = Macro
        fields = ["id", "name", "actions", "created_at"]
        read_only_fields = ["id", "created_at"]


class MacroWriteSerializer(serializers.Serializer):
    """The service checks the actions against this workspace (the saved reply, tags and team exist)."""

    name = serializers.CharField(max_length=200)
    actions = serializers.ListField(
        child=serializers.DictField(), max_length=50, help_text="1 to 10 actions; see the macro's `actions`"
    )


MACRO_ERRORS = OpenApiResponse(
    ErrorResponseSerializer,
    description="`validation_error`, `invalid_macro` (the name or an action), `unknown_tag`, "
    "`duplicate_macro`",
)
MACRO_FAILED = OpenApiResponse(
    ErrorResponseSerializer,
    description="`macro_failed`: a step was refused and nothing was changed; `details` has the `step` "
    "(from 1), its `action` type and the step's own `reason` code (e.g. `outside_window`, 422); the "
    "status is the step's",
)


class MacroListView(generics.ListAPIView):
    """GET: the macros (any agent: they run them from the composer). POST: add one (owners and admins).
    A macro is a named list of actions run in order on a conversation, all or none."""

    permission_classes = [RolePermission]
    required_roles = {"read": "agent", "write": "admin"}
    serializer_class = MacroSerializer
    queryset = Macro.objects.all()

    @extend_schema(request=MacroWriteSerializer, responses={201: MacroSerializer, 400: MACRO_ERRORS})
    def post(self, request: Request) -> Response:
        form = MacroWriteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        macro = macros.save_macro(name=form.validated_data["name"], actions=form.validated_data["actions"])
        return Response(MacroSerializer(macro).data, status=status.HTTP_201_CREATED)


class MacroDetailView(generics.RetrieveAPIView):
    """GET: one macro. DELETE: remove it (owners and admins). There is no PATCH: editing a macro is
    deleting it and adding it again, as on Settings → Macros."""

    permission_classes = [RolePermission]
    required_roles = {"read": "agent", "write": "admin"}
    serializer_class = MacroSerializer
    queryset = Macro.objects.all()

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        macros.delete_macro(macro=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class RunMacroView(APIView):
    """POST: run the macro on the conversation, as the composer does (any agent who sees the
    conversation): every action in order through the inbox's services, or none of them."""

    @extend_schema(
        request=None,
        responses={
            200: ConversationSerializer,
            400: MACRO_FAILED,
            403: MACRO_FAILED,
            404: OpenApiResponse(
                ErrorResponseSerializer, description="`not_found`: no such macro or visible conversation"
            ),
            409: MACRO_FAILED,
            422: MACRO_FAILED,
        },
    )
    def post(self, request: Request, pk: int, macro_id: int) -> Response:
        viewer = selectors.viewer_for_request(request)
        conversation = selectors.get_visible_conversation(
            viewer, pk, queryset=Conversation.objects.select_related("contact", "channel")
        )
        macro = get_object_or_404(Macro, pk=macro_id)
        done = macros.run_macro(macro=macro, conversation=conversation, by=viewer)
        return Response(ConversationSerializer(done, context={"request": request}).data)
