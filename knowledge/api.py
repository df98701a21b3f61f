"""API v1 for knowledge: documents (files, text, web pages) and FAQ pairs. Thin: parse, call a service,
answer. Owners and admins write; supervisors and up read."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from crm.permissions import RolePermission, acting_user
from knowledge import selectors, services
from knowledge.errors import KnowledgeError
from knowledge.models import Faq, Language, Source

READ, WRITE = "supervisor", "admin"


class SourceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Source
        fields = [
            "id",
            "kind",
            "title",
            "status",
            "error_code",
            "error",
            "language",
            "url",
            "file_name",
            "content_type",
            "size",
            "chunk_count",
            "created_at",
            "updated_at",
            "indexed_at",
        ]
        read_only_fields = fields


class DocumentInputSerializer(serializers.Serializer):
    """One of: multipart `file` (+ `title`), `text` (+ `title`), or `url`."""

    file = serializers.FileField(required=False, allow_empty_file=True)
    title = serializers.CharField(required=False, allow_blank=True, max_length=200)
    text = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    url = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    language = serializers.ChoiceField(choices=Language.choices, required=False, default="auto")


class FaqSerializer(serializers.ModelSerializer):
    class Meta:
        model = Faq
        fields = ["id", "question", "answer", "language", "status", "source", "created_at", "updated_at"]
        read_only_fields = ["id", "source", "created_at", "updated_at"]
        extra_kwargs = {"question": {"trim_whitespace": True}, "status": {"required": False}}


class DocumentViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    permission_classes = [RolePermission]
    required_roles = {"read": READ, "write": WRITE}
    serializer_class = SourceSerializer
    ordering = ["-id"]

    def get_queryset(self) -> QuerySet[Source]:
        return selectors.sources().order_by("-id")

    @extend_schema(
        request=DocumentInputSerializer,
        responses={201: SourceSerializer, 202: SourceSerializer},
        summary="Add a document",
        description="Multipart `file` (TXT, Markdown, HTML, PDF, DOCX) with an optional `title`; or JSON "
        '`{"title", "text"}`; or `{"url"}`. 201 when indexed already, 202 while indexing continues.',
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = DocumentInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        user = acting_user(request)
        given = [k for k in ("file", "text", "url") if values.get(k) not in (None, "")]
        upload = values.get("file")
        if upload is not None and "file" not in given:
            given.append("file")
        if len(given) != 1:
            raise KnowledgeError(
                "invalid_document", "Send exactly one of: a file, a text or a url.", field="file"
            )
        if upload is not None:
            if upload.size is not None and upload.size > settings.KNOWLEDGE_MAX_FILE_BYTES:
                raise KnowledgeError(
                    "too_large",
                    f"The file is larger than {settings.KNOWLEDGE_MAX_FILE_BYTES} bytes.",
                    field="file",
                )
            source = services.create_file_source(
                name=upload.name or "",
                data=upload.read(),
                content_type=getattr(upload, "content_type", "") or "",
                title=values.get("title", ""),
                language=values["language"],
                user=user,
            )
        elif "text" in given:
            source = services.create_text_source(
                title=values.get("title", ""), text=values["text"], language=values["language"], user=user
            )
        else:
            source = services.create_url_source(
                url=values["url"], title=values.get("title", ""), language=values["language"], user=user
            )
        code = (
            status.HTTP_202_ACCEPTED if source.status == Source.Status.PROCESSING else status.HTTP_201_CREATED
        )
        return Response(SourceSerializer(source).data, status=code)

    def perform_destroy(self, instance: Source) -> None:
        services.delete_source(source=instance)


class FaqViewSet(viewsets.ModelViewSet):
    permission_classes = [RolePermission]
    required_roles = {"read": READ, "write": WRITE}
    serializer_class = FaqSerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    ordering = ["-id"]

    def get_queryset(self) -> QuerySet[Faq]:
        return selectors.faqs().order_by("-id")

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = FaqSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        faq = services.create_faq(
            question=values["question"],
            answer=values["answer"],
            status=values.get("status", Faq.Status.APPROVED),
            language=values.get("language", "auto"),
            user=acting_user(request),
        )
        return Response(FaqSerializer(faq).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        faq = self.get_object()
        data = FaqSerializer(faq, data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        faq = services.update_faq(
            faq=faq,
            question=values.get("question"),
            answer=values.get("answer"),
            language=values.get("language"),
        )
        if values.get("status") == Faq.Status.APPROVED:
            faq = services.approve_faq(faq=faq, user=acting_user(request))
        elif values.get("status") == Faq.Status.PENDING and faq.status != Faq.Status.PENDING:
            raise KnowledgeError(
                "invalid_status", "An approved FAQ cannot go back to pending.", field="status"
            )
        faq.refresh_from_db()
        return Response(FaqSerializer(faq).data)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.partial_update(request, *args, **kwargs)

    def perform_destroy(self, instance: Faq) -> None:
        services.delete_faq(faq=instance)
