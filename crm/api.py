"""API v1 for the CRM. Thin: parse with a serializer, call a service or a selector, answer.

Conventions (pagination, filters, auth, rate limits, error shape) come from REST_FRAMEWORK's defaults
and config/api.py; roles from crm.permissions.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.filters import OrderingFilter
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from core import audit, csvsafe
from core.api import AnyAcceptNegotiation, CursorPagination, FilterBackend
from core.errors import ServiceError
from crm import filters, selectors, serializers, services
from crm.models import AttributeDefinition, Contact, ContactImport, Note, Stage, Tag
from crm.permissions import RolePermission, acting_user, has_role

AGENT, SUPERVISOR, ADMIN = "agent", "supervisor", "admin"


class CrmViewSet(viewsets.ModelViewSet):
    permission_classes = [RolePermission]
    ordering = ["-id"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def perform_destroy(self, instance: Any) -> None:
        instance.delete()


@extend_schema_view(
    list=extend_schema(
        summary="List contacts", description="Search with `?search=`; filter by tag, company..."
    ),
    merge=extend_schema(
        summary="Merge another contact into this one",
        description="Moves the other's conversations, notes, deals, tasks and tags here, then deletes it.",
    ),
)
class ContactViewSet(CrmViewSet):
    serializer_class = serializers.ContactSerializer
    filter_backends = [FilterBackend, filters.ContactSearchFilter, OrderingFilter]
    filterset_class = filters.ContactFilter
    ordering_fields = ["id", "name", "created_at", "updated_at", "last_inbound_at"]
    required_roles = {"destroy": SUPERVISOR, "merge": SUPERVISOR, "export": SUPERVISOR}

    def get_queryset(self) -> QuerySet[Contact]:
        return selectors.contacts()

    def perform_destroy(self, instance: Contact) -> None:
        services.delete_contact(contact=instance)  # audited, as the page's delete is

    def perform_create(self, serializer: Any) -> None:
        data = dict(serializer.validated_data)
        tags = data.pop("tags", None)
        serializer.instance = services.create_contact(
            tags=services.tags_by_name(tags) if tags is not None else None, **data
        )

    def perform_update(self, serializer: Any) -> None:
        data = dict(serializer.validated_data)
        tags = data.pop("tags", None)
        serializer.instance = services.update_contact(
            contact=serializer.instance,
            tags=services.tags_by_name(tags) if tags is not None else None,
            **data,
        )

    @extend_schema(request=serializers.MergeSerializer, responses=serializers.ContactSerializer)
    @action(detail=True, methods=["post"])
    def merge(self, request: Request, pk: str | None = None) -> Response:
        keep = self.get_object()
        body = serializers.MergeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        discard = get_object_or_404(Contact, pk=body.validated_data["other"])
        merged = services.merge_contacts(keep=keep, discard=discard)
        return Response(self.get_serializer(selectors.contact_detail(merged.pk)).data)

    @extend_schema(
        summary="Export contacts as CSV (streamed)",
        responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR)},
        filters=True,
    )
    @action(
        detail=False, methods=["get"], pagination_class=None, content_negotiation_class=AnyAcceptNegotiation
    )
    def export(self, request: Request) -> StreamingHttpResponse:
        queryset = self.filter_queryset(self.get_queryset())
        return csv_export_response(queryset)


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_export_response(queryset: QuerySet[Contact]) -> StreamingHttpResponse:
    """Streams rows as they are read (server-side cursor in chunks), so 100,000 contacts fit in memory.

    Cells are neutralised against spreadsheet formulas (core.csvsafe). The first chunk is read before the
    response starts: an error in the query (the filters were validated already, this is for the rest) is
    then an error response, never a 200 whose file silently stops.
    """
    writer = csvsafe.writer(_Echo())
    definitions = list(AttributeDefinition.objects.values_list("key", flat=True))
    header = [*services.EXPORT_COLUMNS, *definitions]
    records = selectors.export_rows(queryset, attribute_keys=definitions)
    first = next(records, None)
    audit.record("export.created", details={"kind": "contacts"})

    def rows() -> Iterator[str]:
        yield writer.writerow(header)
        if first is not None:
            yield writer.writerow(first)
        for row in records:
            yield writer.writerow(row)

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="contacts.csv"'
    return response


class CompanyViewSet(CrmViewSet):
    serializer_class = serializers.CompanySerializer
    search_fields = ["name", "domain"]
    ordering_fields = ["id", "name", "created_at"]
    required_roles = {"destroy": SUPERVISOR}

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.companies()

    def perform_create(self, serializer: Any) -> None:
        company = services.save_company(**serializer.validated_data)
        # Answered as the list and detail answer it: with contact_count.
        serializer.instance = self.get_queryset().get(pk=company.pk)

    def perform_update(self, serializer: Any) -> None:
        instance = serializer.instance
        data = {"name": instance.name, "domain": instance.domain, **serializer.validated_data}
        company = services.save_company(company=instance, **data)
        serializer.instance = self.get_queryset().get(pk=company.pk)


class TagViewSet(CrmViewSet):
    serializer_class = serializers.TagSerializer
    search_fields = ["name"]
    ordering_fields = ["id", "name"]
    required_roles = {"partial_update": ADMIN, "destroy": ADMIN}

    def get_queryset(self) -> QuerySet[Tag]:
        return selectors.tags()

    def perform_create(self, serializer: Any) -> None:
        serializer.instance = services.save_tag(**serializer.validated_data)

    def perform_update(self, serializer: Any) -> None:
        tag = serializer.instance
        data = {"name": tag.name, "color": tag.color, **serializer.validated_data}
        serializer.instance = services.save_tag(tag=tag, **data)


class AttributeDefinitionViewSet(CrmViewSet):
    serializer_class = serializers.AttributeDefinitionSerializer
    ordering_fields = ["id", "position", "label"]
    required_roles = {"write": ADMIN}

    def get_queryset(self) -> QuerySet[AttributeDefinition]:
        return AttributeDefinition.objects.all()

    def perform_create(self, serializer: Any) -> None:
        serializer.instance = services.save_attribute_definition(**serializer.validated_data)

    def perform_update(self, serializer: Any) -> None:
        d = serializer.instance
        data = {
            "key": d.key,
            "label": d.label,
            "type": d.type,
            "choices": d.choices,
            "required": d.required,
            "position": d.position,
            **serializer.validated_data,
        }
        serializer.instance = services.save_attribute_definition(definition=d, **data)

    def perform_destroy(self, instance: AttributeDefinition) -> None:
        services.delete_attribute_definition(definition=instance)


class NoteViewSet(CrmViewSet):
    serializer_class = serializers.NoteSerializer
    filterset_class = filters.NoteFilter
    ordering_fields = ["id", "created_at"]

    def get_queryset(self) -> QuerySet[Note]:
        return Note.objects.select_related("author")

    def check_object_permissions(self, request: Request, obj: Any) -> None:
        super().check_object_permissions(request, obj)
        # Agents edit and delete their own notes; supervisors and up anyone's.
        if request.method not in ("GET", "HEAD", "OPTIONS") and not has_role(request, SUPERVISOR):
            user = acting_user(request)
            if user is None or obj.author_id != user.pk:
                self.permission_denied(request, message="Only the author or a supervisor can change a note.")

    def perform_create(self, serializer: Any) -> None:
        data = serializer.validated_data
        serializer.instance = services.add_note(
            contact=data["contact"], body=data["body"], author=acting_user(self.request)
        )

    def perform_update(self, serializer: Any) -> None:
        note = serializer.instance
        serializer.instance = services.update_note(
            note=note, body=serializer.validated_data.get("body", note.body)
        )


@extend_schema_view(
    create=extend_schema(
        description="A new pipeline gets the standard stages (New, Qualified, Proposal, Won, Lost). "
        "409 `duplicate_name` when another pipeline has this name (in any case)."
    ),
    partial_update=extend_schema(
        description="Rename. 409 `duplicate_name` when another pipeline has this name (in any case)."
    ),
    destroy=extend_schema(
        description="Deletes the pipeline with its stages. A pipeline with deals (open, won or lost) is "
        "not deleted: 409 `pipeline_in_use`; move its deals to another pipeline (or delete them) first."
    ),
)
class PipelineViewSet(CrmViewSet):
    serializer_class = serializers.PipelineSerializer
    ordering_fields = ["id", "position", "name"]
    ordering = ["position", "id"]
    required_roles = {"write": ADMIN}

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.pipelines()

    def perform_create(self, serializer: Any) -> None:
        serializer.instance = services.create_pipeline(name=serializer.validated_data["name"])

    def perform_update(self, serializer: Any) -> None:
        pipeline = serializer.instance
        name = serializer.validated_data.get("name", pipeline.name)
        serializer.instance = services.rename_pipeline(pipeline=pipeline, name=name)

    def perform_destroy(self, instance: Any) -> None:
        services.delete_pipeline(pipeline=instance)


class StageViewSet(CrmViewSet):
    serializer_class = serializers.StageSerializer
    filterset_fields = ["pipeline", "kind"]
    ordering_fields = ["id", "position"]
    ordering = ["position", "id"]
    required_roles = {"write": ADMIN}

    def get_queryset(self) -> QuerySet[Stage]:
        return Stage.objects.all()

    def perform_create(self, serializer: Any) -> None:
        serializer.instance = services.save_stage(**serializer.validated_data)

    def perform_update(self, serializer: Any) -> None:
        s = serializer.instance
        data = {
            "pipeline": s.pipeline,
            "name": s.name,
            "probability": s.probability,
            "kind": s.kind,
            "position": s.position,
            **serializer.validated_data,
        }
        serializer.instance = services.save_stage(stage=s, **data)

    def perform_destroy(self, instance: Any) -> None:
        if instance.deals.exists():
            raise ServiceError("stage_in_use", "Move this stage's deals first.", status=409)
        instance.delete()


class DealViewSet(CrmViewSet):
    serializer_class = serializers.DealSerializer
    filterset_class = filters.DealFilter
    search_fields = ["title"]
    ordering_fields = ["id", "value", "expected_close_date", "created_at", "updated_at"]
    required_roles = {"destroy": SUPERVISOR}

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.deals()

    def perform_create(self, serializer: Any) -> None:
        serializer.instance = services.create_deal(by=acting_user(self.request), **serializer.validated_data)

    def perform_update(self, serializer: Any) -> None:
        data = dict(serializer.validated_data)
        data.pop("pipeline", None)  # a deal changes pipeline by moving to one of its stages, never alone
        serializer.instance = services.update_deal(
            deal=serializer.instance, by=acting_user(self.request), **data
        )

    @extend_schema(request=serializers.MoveDealSerializer, responses=serializers.DealSerializer)
    @action(detail=True, methods=["post"])
    def move(self, request: Request, pk: str | None = None) -> Response:
        deal = self.get_object()
        body = serializers.MoveDealSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.move_deal(deal=deal, stage=body.validated_data["stage"], by=acting_user(request))
        return Response(self.get_serializer(selectors.deals().get(pk=deal.pk)).data)

    @extend_schema(responses=serializers.StageChangeSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def history(self, request: Request, pk: str | None = None) -> Response:
        deal = self.get_object()
        return Response(serializers.StageChangeSerializer(deal.stage_history.all(), many=True).data)


class TaskViewSet(CrmViewSet):
    serializer_class = serializers.TaskSerializer
    filterset_class = filters.TaskFilter
    search_fields = ["title"]
    ordering_fields = ["id", "due_at", "created_at"]
    required_roles = {"destroy": SUPERVISOR}

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.tasks()

    def perform_create(self, serializer: Any) -> None:
        data = dict(serializer.validated_data)
        done = data.pop("done", None)
        task = services.create_task(created_by=acting_user(self.request), **data)
        serializer.instance = services.update_task(task=task, done=done) if done else task

    def perform_update(self, serializer: Any) -> None:
        serializer.instance = services.update_task(task=serializer.instance, **serializer.validated_data)


class AgentViewSet(mixins.UpdateModelMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = serializers.AgentSerializer
    permission_classes = [RolePermission]
    filterset_fields = ["role", "availability"]
    search_fields = ["user__email", "user__first_name", "user__last_name"]
    ordering_fields = ["id"]
    ordering = ["id"]
    http_method_names = ["get", "patch", "head", "options"]

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.agents()

    @extend_schema(
        request=serializers.AgentUpdateSerializer,
        responses={200: serializers.AgentSerializer, 400: OpenApiResponse(description="invalid input")},
    )
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Availability (an agent for themselves, owners and admins for anyone) and capacity, the most
        open conversations auto-assignment gives them (owners and admins; null: the workspace default)."""
        agent = self.get_object()
        form = serializers.AgentUpdateSerializer(data=request.data, partial=True)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        user = acting_user(request)
        is_admin = has_role(request, ADMIN)
        is_self = user is not None and getattr(user, "pk", None) == agent.user_id
        if "availability" in data and not (is_self or is_admin):
            raise ServiceError(
                "forbidden", "Only owners and admins can set another agent's availability.", status=403
            )
        if "capacity" in data and not is_admin:
            raise ServiceError("forbidden", "Only owners and admins can set an agent's capacity.", status=403)
        if "availability" in data:
            services.set_agent_availability(agent=agent, availability=data["availability"])
        if "capacity" in data:
            services.set_agent_capacity(agent=agent, capacity=data["capacity"])
        return Response(serializers.AgentSerializer(self.get_queryset().get(pk=agent.pk)).data)


class TeamViewSet(CrmViewSet):
    serializer_class = serializers.TeamSerializer
    search_fields = ["name"]
    ordering_fields = ["id", "name"]
    ordering = ["name", "id"]
    required_roles = {"write": ADMIN}

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.teams()

    def perform_create(self, serializer: Any) -> None:
        data = serializer.validated_data
        serializer.instance = services.save_team(
            name=data["name"],
            description=data.get("description", ""),
            member_ids=[a.pk for a in data.get("members", [])],
        )

    def perform_update(self, serializer: Any) -> None:
        team = serializer.instance
        data = serializer.validated_data
        members = data.get("members")
        serializer.instance = services.save_team(
            team=team,
            name=data.get("name", team.name),
            description=data.get("description", team.description),
            member_ids=[a.pk for a in members] if members is not None else None,
        )


class ContactImportViewSet(
    mixins.CreateModelMixin, mixins.RetrieveModelMixin, mixins.ListModelMixin, viewsets.GenericViewSet
):
    """CSV import as a job: POST the file, then GET the import for its progress and rejected rows."""

    serializer_class = serializers.ContactImportSerializer
    permission_classes = [RolePermission]
    parser_classes = [MultiPartParser, FormParser]
    required_roles = {"read": SUPERVISOR, "write": SUPERVISOR}
    ordering_fields = ["id"]

    def get_queryset(self) -> QuerySet[ContactImport]:
        return ContactImport.objects.defer("content")

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = self.get_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        upload = body.validated_data["file"]
        job = services.start_contact_import(
            filename=upload.name or "", content=upload.read(), created_by=acting_user(request)
        )
        return Response(self.get_serializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses=serializers.ImportRejectionSerializer(many=True))
    @action(detail=True, methods=["get"], filter_backends=[])
    def rejections(self, request: Request, pk: str | None = None) -> Response:
        job = self.get_object()
        paginator = RowOrderPagination()
        page: Any = paginator.paginate_queryset(job.rejections.all(), request, view=self)
        data = serializers.ImportRejectionSerializer(page, many=True).data
        return paginator.get_paginated_response(data)


class RowOrderPagination(CursorPagination):
    ordering = "row_number"
