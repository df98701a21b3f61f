"""API v1: conversations and their messages, sending of every WhatsApp type, retry, media upload.

Thin: parse, call conversations.services / whatsapp.services, answer. Auth, permissions, pagination,
filters and rate limits come from REST_FRAMEWORK's defaults (core/api.py).
"""

from __future__ import annotations

from typing import Any

from django.core.handlers.asgi import ASGIRequest
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.http import HttpResponseBase
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from conversations import channels, rules, selectors, services
from conversations import media as media_serving
from conversations.models import Channel, Conversation, MediaFile, Message, visibility_q
from conversations.selectors import Viewer
from core.api import AnyAcceptNegotiation
from core.api_schema import ErrorResponseSerializer
from core.errors import ServiceError
from core.idempotency import idempotent, scope_of
from crm.models import Contact
from crm.permissions import acting_user

MESSAGE_TYPES = [
    "text",
    "image",
    "video",
    "audio",
    "document",
    "sticker",
    "template",
    "interactive",
    "reaction",
]
# What POST .../messages/ takes: a message type, or "read" (mark the conversation read on WhatsApp).
SEND_TYPES = [*MESSAGE_TYPES, "read"]


# -- serializers ---------------------------------------------------------------------------------------


class ContactBriefSerializer(serializers.ModelSerializer):
    # A WhatsApp user may have no phone number, only a username and a business-scoped user id (BSUID).
    display_name = serializers.CharField(source="__str__", read_only=True)
    bsuid = serializers.CharField(source="whatsapp_user_id", read_only=True)

    class Meta:
        model = Contact
        fields = ["id", "name", "phone", "wa_id", "username", "bsuid", "display_name"]


class ChannelBriefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Channel
        fields = ["id", "name", "display_phone", "phone_number_id", "status", "status_reason"]


class ConversationSerializer(serializers.ModelSerializer):
    contact = ContactBriefSerializer(read_only=True)
    channel = ChannelBriefSerializer(read_only=True, allow_null=True)
    last_message_preview = serializers.CharField(read_only=True, default="")
    window_open = serializers.SerializerMethodField()
    window_closes_at = serializers.SerializerMethodField()

    class Meta:
        model = Conversation
        fields = [
            "id",
            "status",
            "contact",
            "channel",
            "assignee",
            "team",
            "unread_count",
            "bot_active",
            "last_message_at",
            "last_inbound_at",
            "last_message_preview",
            "window_open",
            "window_closes_at",
            "snoozed_until",
            "resolved_at",
            "created_at",
        ]

    # A number whose provider has no 24-hour window (channels.SERVICE_WINDOW): always open, no end.
    def get_window_open(self, obj: Conversation) -> bool:
        if not channels.supports(obj.channel, channels.SERVICE_WINDOW):
            return True
        return rules.is_window_open(obj.contact.last_inbound_at)

    def get_window_closes_at(self, obj: Conversation) -> Any:
        if not channels.supports(obj.channel, channels.SERVICE_WINDOW):
            return None
        return rules.window_closes_at(obj.contact.last_inbound_at)


class MediaSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField(
        help_text="For browsers: the inbox's media view, which needs a signed-in session (not an API key). "
        "Null until the file is downloaded and belongs to a message."
    )
    content_url = serializers.SerializerMethodField(
        help_text="For API clients: GET it with the same credentials as this response (API key or "
        "session) to download the file (`GET /api/v1/media/{id}/content/`). Null when `url` is."
    )

    class Meta:
        model = MediaFile
        fields = [
            "id",
            "kind",
            "media_id",
            "mime_type",
            "size",
            "filename",
            "status",
            "error",
            "url",
            "content_url",
        ]

    def get_url(self, obj: MediaFile) -> str | None:
        """The inbox's authenticated media view (signed-in staff who see the conversation), absolute when
        the request is known; None until the file is stored and belongs to a message."""
        return self._link(obj, "inbox:media")

    def get_content_url(self, obj: MediaFile) -> str | None:
        """The API's download of the same file (MediaContentView), under the same conditions as `url`."""
        return self._link(obj, "api-media-content")

    def _link(self, obj: MediaFile, route: str) -> str | None:
        if not obj.file or obj.status != MediaFile.Status.READY or obj.message_id is None:
            return None
        path = reverse(route, args=[obj.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path


class MessageSerializer(serializers.ModelSerializer):
    media = serializers.SerializerMethodField()

    class Meta:
        model = Message
        fields = [
            "id",
            "conversation",
            "direction",
            "type",
            "text",
            "preview",
            "payload",
            "status",
            "wamid",
            "reply_to",
            "sender",
            "is_forwarded",
            "reactions",
            "error_code",
            "error_title",
            "error_details",
            "timestamp",
            "sent_at",
            "delivered_at",
            "read_at",
            "media",
            "origin",
            "pricing_model",
            "pricing_category",
            "pricing_type",
            "billable",
            "pricing_market",
        ]
        # What Meta reports about a message (pricing) and where it came from: never written by a client.
        read_only_fields = [
            "origin",
            "pricing_model",
            "pricing_category",
            "pricing_type",
            "billable",
            "pricing_market",
        ]

    def get_media(self, obj: Message) -> dict[str, Any] | None:
        try:
            media = obj.media  # type: ignore[attr-defined]
        except MediaFile.DoesNotExist:
            return None
        return MediaSerializer(media, context=self.context).data


class SendMessageSerializer(serializers.Serializer):
    """One shape for every type: `type` plus that type's fields."""

    type = serializers.ChoiceField(choices=SEND_TYPES)
    text = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    reply_to = serializers.IntegerField(required=False)
    media = serializers.IntegerField(required=False, help_text="id of an uploaded media file")
    caption = serializers.CharField(required=False, allow_blank=True)
    template = serializers.CharField(required=False, help_text="template name (or id)")
    language = serializers.CharField(required=False)
    parameters = serializers.JSONField(required=False)
    interactive = serializers.JSONField(required=False)
    message = serializers.IntegerField(required=False, help_text="target message (reaction, read)")
    emoji = serializers.CharField(required=False, allow_blank=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        needs = {
            "text": ["text"],
            "template": ["template"],
            "interactive": ["interactive"],
            "reaction": ["message", "emoji"],
            "read": ["message"],
            **{kind: ["media"] for kind in services.MEDIA_KINDS},
        }[attrs["type"]]
        missing = {field: ["This field is required."] for field in needs if field not in attrs}
        if missing:
            raise serializers.ValidationError(missing)
        return attrs


class StartConversationSerializer(SendMessageSerializer):
    contact = serializers.IntegerField()
    channel = serializers.IntegerField(required=False, help_text="default: the tenant's first active number")


# -- views ---------------------------------------------------------------------------------------------

# A send that is well-formed but refused by a rule of WhatsApp or of the workspace (outside the 24-hour
# window, no number, no such uploaded media, a file over the limit, a reused Idempotency-Key...).
REFUSED = OpenApiResponse(
    ErrorResponseSerializer,
    description="Refused by a sending rule; `code` says which: `outside_window` (numbers with the 24-hour "
    "window: Cloud API numbers), `no_channel`, `channel_inactive`, `contact_blocked` (nothing goes to a "
    "blocked contact), `opted_out` (a MARKETING template to a contact who opted out), `template_parameters`, "
    "`templates_unsupported` / `interactive_unsupported` (a WhatsApp-Web number has neither), "
    "`invalid_media`...",
)


def _acting_user(request: Request) -> Any:
    # The signed-in user or a personal key's user; None for an integration key.
    return acting_user(request)


def _viewer(request: Request) -> Viewer:
    return selectors.viewer_for_request(request)


def _message_key(request: Request) -> str | None:
    header = request.headers.get("Idempotency-Key")
    # The message-level key is scoped to the caller as well, like the response cache in core.idempotency.
    return ("api:" + scope_of(request, header).removeprefix("idem:")[:60]) if header else None


def draft_from_request(
    *, data: dict[str, Any], request: Request, messages: QuerySet[Message]
) -> services.Draft:
    """A validated SendMessageSerializer payload (any type but `read`) as the reply path's Draft.
    `messages`: where quoted and reacted-to messages are looked up (404 outside it)."""
    kind = data["type"]
    key = _message_key(request)
    reply_to = get_object_or_404(messages, pk=data["reply_to"]) if "reply_to" in data else None
    if kind == "text":
        return services.Draft(kind="text", text=data["text"], reply_to=reply_to, idempotency_key=key)
    if kind in services.MEDIA_KINDS:
        media = _sendable_media(request, data["media"])
        if media is None or media.kind != kind:
            raise ServiceError("invalid_media", f"No uploaded {kind} with that id.", status=422)
        return services.Draft(
            kind="media", media=media, text=data.get("caption", ""), reply_to=reply_to, idempotency_key=key
        )
    if kind == "template":
        name = str(data["template"])
        # A template's id or its name: the number's provider resolves it (conversations.channels).
        template: int | str = int(name) if name.isdigit() else name
        return services.Draft(
            kind="template",
            template=template,
            language=data.get("language"),
            parameters=data.get("parameters"),
            idempotency_key=key,
        )
    if kind == "interactive":
        if not isinstance(data["interactive"], dict):
            raise ServiceError("invalid_interactive", "interactive must be an object.", status=422)
        return services.Draft(
            kind="interactive", interactive=data["interactive"], reply_to=reply_to, idempotency_key=key
        )
    target = get_object_or_404(messages, pk=data["message"])
    return services.Draft(kind="reaction", target=target, emoji=data["emoji"], idempotency_key=key)


def send_from_request(*, conversation: Conversation, data: dict[str, Any], request: Request) -> Message:
    """A validated SendMessageSerializer payload through the reply path (services.send_reply), as the
    inbox sends: the same rules, bot handover, first response and events."""
    messages = Message.objects.filter(conversation=conversation)
    if data["type"] == "read":
        target = get_object_or_404(messages, pk=data["message"])
        return services.mark_as_read(message=target, user=_acting_user(request))
    draft = draft_from_request(data=data, request=request, messages=messages)
    return services.send_reply(conversation=conversation, draft=draft, by=_viewer(request))


def _sendable_media(request: Request, pk: int) -> MediaFile | None:
    """An uploaded file, not yet sent or sent in a conversation the caller sees: an id never reaches a
    file of a conversation hidden from them."""
    visible = Q(message__isnull=True) | visibility_q(_viewer(request), prefix="message__conversation__")
    return MediaFile.objects.filter(visible, pk=pk, direction=MediaFile.Direction.OUTBOUND).first()


def conversations_queryset(viewer: Viewer) -> QuerySet[Conversation]:
    latest = Message.objects.filter(conversation=OuterRef("pk")).order_by("-timestamp", "-id")
    return (
        Conversation.objects.visible_to(viewer)
        .select_related("contact", "channel")
        .annotate(last_message_preview=Subquery(latest.values("preview")[:1]))
    )


class ConversationListView(generics.ListAPIView):
    """Conversations, most recent activity first. Filter with ?status=, ?channel=, ?assignee=, ?contact=."""

    serializer_class = ConversationSerializer
    filterset_fields = ["status", "channel", "assignee", "team", "contact"]
    ordering_fields = ["last_message_at", "id", "created_at"]
    ordering = ["-last_message_at", "-id"]

    def get_queryset(self) -> QuerySet[Conversation]:
        if getattr(self, "swagger_fake_view", False):  # the schema generator's request has no viewer
            return Conversation.objects.none()
        return conversations_queryset(_viewer(self.request)).order_by("-last_message_at", "-id")


class ConversationUpdateSerializer(serializers.Serializer):
    """PATCH: any of these; the others stay as they are. Applied together or not at all."""

    assignee = serializers.IntegerField(
        required=False, allow_null=True, help_text="the agent's user id (as `assignee` reads), or null"
    )
    team = serializers.IntegerField(required=False, allow_null=True, help_text="a team id, or null")
    status = serializers.ChoiceField(choices=Conversation.Status.choices, required=False)
    snoozed_until = serializers.DateTimeField(
        required=False, allow_null=True, help_text="with status `snoozed` (or alone): hidden until then"
    )
    bot_active = serializers.BooleanField(required=False)
    tags = serializers.ListField(
        child=serializers.CharField(max_length=50),
        required=False,
        max_length=100,
        help_text="tag names; replaces the conversation's tags (the tags must exist)",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs:
            raise serializers.ValidationError("Give at least one field to change.")
        return attrs


WORKFLOW_ERRORS = {
    400: OpenApiResponse(
        ErrorResponseSerializer,
        description="`validation_error` (a field's type or choice), `invalid_assignee`, `invalid_team`, "
        "`unknown_tag`, `invalid_status`, `invalid_snooze`",
    ),
    403: OpenApiResponse(
        ErrorResponseSerializer,
        description="`forbidden`: the inbox's rule, e.g. only a supervisor reassigns another agent's "
        "conversation",
    ),
    404: OpenApiResponse(
        ErrorResponseSerializer, description="`not_found`: no such conversation visible to you"
    ),
    409: OpenApiResponse(
        ErrorResponseSerializer, description="`already_assigned`: someone else took it since you loaded it"
    ),
}


class ConversationDetailView(generics.RetrieveAPIView):
    """GET: one conversation. PATCH: change its assignee, team, status, snooze, bot and tags, with the
    inbox's rules and realtime events (conversations.services.update_conversation)."""

    serializer_class = ConversationSerializer

    def get_queryset(self) -> QuerySet[Conversation]:
        return conversations_queryset(_viewer(self.request))

    @extend_schema(
        request=ConversationUpdateSerializer, responses={200: ConversationSerializer, **WORKFLOW_ERRORS}
    )
    def patch(self, request: Request, pk: int) -> Response:
        viewer = _viewer(request)
        conversation = selectors.get_visible_conversation(
            viewer, pk, queryset=Conversation.objects.select_related("contact", "channel")
        )
        form = ConversationUpdateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        names = {"assignee": "assignee_id", "team": "team_id", "tags": "tag_names"}
        changes = {names.get(field, field): value for field, value in data.items()}
        services.update_conversation(conversation=conversation, by=viewer, **changes)
        return Response(ConversationSerializer(conversation, context={"request": request}).data)


class ConversationMessagesView(generics.ListAPIView):
    """GET: the conversation's messages, newest first. POST: send one (`type` + that type's fields);
    honours Idempotency-Key. Outside the 24-hour window free-form types get 422 `outside_window`."""

    serializer_class = MessageSerializer
    ordering_fields = ["timestamp", "id"]
    ordering = ["-timestamp", "-id"]

    def get_conversation(self) -> Conversation:
        return selectors.get_visible_conversation(
            _viewer(self.request),
            self.kwargs["pk"],
            queryset=Conversation.objects.select_related("contact", "channel"),
        )

    def get_queryset(self) -> QuerySet[Message]:
        if getattr(self, "swagger_fake_view", False):  # the schema generator, with no conversation
            return Message.objects.none()
        conversation = self.get_conversation()
        return (
            Message.objects.filter(conversation=conversation)
            .select_related("media")
            .order_by("-timestamp", "-id")
        )

    def get_serializer_class(self) -> type[serializers.BaseSerializer]:
        return SendMessageSerializer if self.request.method == "POST" else MessageSerializer

    @extend_schema(
        request=SendMessageSerializer,
        responses={
            201: MessageSerializer,
            200: OpenApiResponse(MessageSerializer, description="`read`: the message marked read"),
            422: REFUSED,
        },
    )
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        conversation = self.get_conversation()
        form = SendMessageSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        message = send_from_request(conversation=conversation, data=form.validated_data, request=request)
        code = status.HTTP_200_OK if form.validated_data["type"] == "read" else status.HTTP_201_CREATED
        return Response(MessageSerializer(message, context={"request": request}).data, status=code)


class StartConversationView(generics.GenericAPIView):
    """Send to a contact: their open conversation on the number, or a new one (usually a template)."""

    serializer_class = StartConversationSerializer

    @extend_schema(
        request=StartConversationSerializer,
        responses={
            201: MessageSerializer,
            404: OpenApiResponse(
                ErrorResponseSerializer,
                description="No such contact or number, or their open conversation is hidden from you",
            ),
            422: REFUSED,
        },
    )
    @idempotent
    def post(self, request: Request) -> Response:
        form = StartConversationSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        if data["type"] == "read":
            raise ServiceError("invalid_type", "Mark messages read on their conversation.", status=422)
        contact = get_object_or_404(Contact, pk=data["contact"])
        numbers = Channel.objects.filter(status=Channel.Status.ACTIVE)
        channel = get_object_or_404(numbers, pk=data["channel"]) if "channel" in data else numbers.first()
        if channel is None:
            raise ServiceError("no_channel", "Connect a WhatsApp number first.", status=422)
        viewer = _viewer(request)
        draft = draft_from_request(data=data, request=request, messages=Message.objects.visible_to(viewer))
        # The contact's open conversation on this number, or a new one; one that is someone else's
        # answers 404, as for any conversation hidden from the caller.
        _, message = services.start_conversation(contact=contact, channel=channel, draft=draft, by=viewer)
        return Response(
            MessageSerializer(message, context={"request": request}).data, status=status.HTTP_201_CREATED
        )


class RetryMessageView(generics.GenericAPIView):
    serializer_class = MessageSerializer

    def get_queryset(self) -> QuerySet[Message]:
        if getattr(self, "swagger_fake_view", False):
            return Message.objects.none()
        # A message is visible exactly when its conversation is.
        return Message.objects.visible_to(_viewer(self.request))

    @extend_schema(request=None, responses={200: MessageSerializer, 422: REFUSED})
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        message = self.get_object()
        retried = services.retry_message(message=message, user=_acting_user(request))
        return Response(
            MessageSerializer(retried, context={"request": request}).data, status=status.HTTP_200_OK
        )


class MediaUploadSerializer(serializers.Serializer):
    file = serializers.FileField()
    channel = serializers.IntegerField(required=False)
    kind = serializers.ChoiceField(choices=list(services.MEDIA_KINDS), required=False)


class MediaUploadView(generics.GenericAPIView):
    """Upload a file for sending (checked against the Cloud API's type and size limits); answer its id."""

    serializer_class = MediaUploadSerializer
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        request=MediaUploadSerializer,
        responses={
            201: MediaSerializer,
            404: OpenApiResponse(ErrorResponseSerializer, description="No such number"),
            422: REFUSED,
        },
    )
    @idempotent
    def post(self, request: Request) -> Response:
        form = MediaUploadSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        numbers = Channel.objects.all()
        channel = get_object_or_404(numbers, pk=data["channel"]) if "channel" in data else numbers.first()
        if channel is None:
            raise ServiceError("no_channel", "Connect a WhatsApp number first.", status=422)
        upload = data["file"]
        media = channels.adapter_for(channel).upload_media(
            channel=channel,
            content=upload.read(),
            filename=upload.name or "",
            mime_type=upload.content_type or "application/octet-stream",
            kind=data.get("kind", ""),
        )
        return Response(MediaSerializer(media).data, status=status.HTTP_201_CREATED)


class MediaContentView(APIView):
    """GET (and HEAD): the file of a message's media, for API clients (the inbox's `url` needs a browser
    session). Answered exactly as the inbox answers it (conversations.media.serve): raster images, audio
    and video with their type, anything else as an attachment, scriptable types as
    application/octet-stream; with object storage, a 302 to a presigned URL that expires within a minute."""

    content_negotiation_class = AnyAcceptNegotiation

    @extend_schema(
        summary="Download a message's media file",
        responses={
            (200, "*/*"): OpenApiResponse(
                OpenApiTypes.BINARY,
                description="The file's bytes, with its Content-Type (application/octet-stream for types "
                "a browser would run) and Content-Disposition",
            ),
            (206, "*/*"): OpenApiResponse(
                OpenApiTypes.BINARY, description="The part a `Range: bytes=...` header asked for"
            ),
            302: OpenApiResponse(
                description="With object storage: Location is a presigned URL of the file, valid for "
                "about a minute; fetch it without the Authorization header"
            ),
            404: OpenApiResponse(
                ErrorResponseSerializer,
                description="`not_found`: no such file, it belongs to no message, or its conversation is "
                "hidden from you",
            ),
            409: OpenApiResponse(
                ErrorResponseSerializer,
                description="`media_not_ready`: the file is still downloading from WhatsApp or its "
                "download failed (`details.status`); see the message's `media.status` and `media.error`",
            ),
        },
    )
    def get(self, request: Request, pk: int) -> HttpResponseBase:
        media = selectors.get_visible_media(_viewer(request), pk)
        if media.status != MediaFile.Status.READY or not media.file:
            raise ServiceError(
                "media_not_ready",
                "This file has not been downloaded yet, or its download failed.",
                status=status.HTTP_409_CONFLICT,
                details={"status": media.status},
            )
        django_request = request._request  # Range and the ASGI handler are read from Django's request
        return media_serving.serve(
            media, asynchronous=isinstance(django_request, ASGIRequest), request=django_request
        )
