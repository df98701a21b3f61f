"""Pipelines, stages and deals."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.utils import timezone

from core.errors import ServiceError
from crm.models import Deal, DealStageChange, Pipeline, Stage
from crm.services.common import ensure_name_free

User = Any  # the tenant's auth user (django.contrib.auth.User)


DEFAULT_STAGES = [
    ("New", 10, Stage.Kind.OPEN),
    ("Qualified", 30, Stage.Kind.OPEN),
    ("Proposal", 60, Stage.Kind.OPEN),
    ("Won", 100, Stage.Kind.WON),
    ("Lost", 0, Stage.Kind.LOST),
]


@transaction.atomic
def create_pipeline(*, name: str, stages: list[tuple[str, int, str]] | None = None) -> Pipeline:
    name = name.strip()
    if not name:
        raise ServiceError("invalid_name", "A pipeline needs a name.", field="name")
    _check_pipeline_name_free(name=name, pipeline=None)
    position = (Pipeline.objects.aggregate(m=Max("position"))["m"] or 0) + 1
    pipeline = Pipeline(name=name, position=position)
    _save_pipeline(pipeline)
    Stage.objects.bulk_create(
        Stage(pipeline=pipeline, name=n, probability=p, kind=k, position=i)
        for i, (n, p, k) in enumerate(stages if stages is not None else DEFAULT_STAGES)
    )
    return pipeline


def _check_pipeline_name_free(*, name: str, pipeline: Pipeline | None) -> None:
    ensure_name_free(
        Pipeline.objects.filter(name__iexact=name), pipeline, "A pipeline with this name exists."
    )


def _save_pipeline(pipeline: Pipeline) -> None:
    # The check above cannot see a concurrent request's uncommitted name; the unique index can.
    try:
        with transaction.atomic():
            pipeline.save()
    except IntegrityError as exc:
        raise ServiceError(
            "duplicate_name",
            "A pipeline with this name exists.",
            field="name",
            status=409,
        ) from exc


def rename_pipeline(*, pipeline: Pipeline, name: str) -> Pipeline:
    name = name.strip()
    if not name:
        raise ServiceError("invalid_name", "A pipeline needs a name.", field="name")
    _check_pipeline_name_free(name=name, pipeline=pipeline)
    pipeline.name = name
    _save_pipeline(pipeline)
    return pipeline


@transaction.atomic
def delete_pipeline(*, pipeline: Pipeline) -> None:
    """Deletes a pipeline and its stages, as long as no deal (open, won or lost) is in it.

    Deals keep their history and reports their numbers, so they are never deleted along with a
    pipeline: they are moved to another pipeline, or deleted, first (409 `pipeline_in_use`). The lock
    makes a deal created meanwhile wait for this decision.
    """
    pipeline = Pipeline.objects.select_for_update().get(pk=pipeline.pk)
    if Deal.objects.filter(Q(pipeline=pipeline) | Q(stage__pipeline=pipeline)).exists():
        raise ServiceError(
            "pipeline_in_use",
            "This pipeline has deals: move them to another pipeline or delete them first.",
            status=409,
        )
    pipeline.delete()


def default_pipeline() -> Pipeline:
    """The first pipeline; a workspace gets a standard one the first time it needs one."""
    pipeline = Pipeline.objects.order_by("position", "id").first()
    return pipeline or create_pipeline(name="Sales")


def save_stage(
    *,
    stage: Stage | None = None,
    pipeline: Pipeline,
    name: str,
    probability: int = 0,
    kind: str = Stage.Kind.OPEN,
    position: int | None = None,
) -> Stage:
    name = name.strip()
    if not name:
        raise ServiceError("invalid_name", "A stage needs a name.", field="name")
    if not 0 <= probability <= 100:
        raise ServiceError(
            "invalid_probability",
            "Probability is a percentage from 0 to 100.",
            field="probability",
        )
    if kind not in Stage.Kind.values:
        raise ServiceError("invalid_kind", f"'{kind}' is not a stage kind.", field="kind")
    ensure_name_free(
        Stage.objects.filter(pipeline=pipeline, name__iexact=name),
        stage,
        "This pipeline has a stage with this name.",
    )
    if stage is not None and stage.pipeline_id != pipeline.pk:
        raise ServiceError(
            "invalid_pipeline",
            "A stage cannot move to another pipeline.",
            field="pipeline",
        )
    stage = stage or Stage(pipeline=pipeline)
    if position is None:
        position = (
            stage.position if stage.pk else (pipeline.stages.aggregate(m=Max("position"))["m"] or 0) + 1
        )
    stage.name, stage.probability, stage.kind, stage.position = (
        name,
        probability,
        kind,
        position,
    )
    stage.save()
    if stage.pk:
        Deal.objects.filter(stage=stage).exclude(status=status_for(stage)).update(status=status_for(stage))
    return stage


def status_for(stage: Stage) -> str:
    return {Stage.Kind.WON: Deal.Status.WON, Stage.Kind.LOST: Deal.Status.LOST}.get(
        Stage.Kind(stage.kind), Deal.Status.OPEN
    )


def _clean_deal_value(value: Any) -> Decimal:
    try:
        amount = Decimal(str(value))
    except InvalidOperation as exc:
        raise ServiceError("invalid_value", "The value must be a number.", field="value") from exc
    if not amount.is_finite() or amount < 0:
        raise ServiceError("invalid_value", "The value must be zero or more.", field="value")
    return amount.quantize(Decimal("0.01"))


@transaction.atomic
def create_deal(
    *,
    title: str,
    pipeline: Pipeline | None = None,
    stage: Stage | None = None,
    by: User | None = None,
    **fields: Any,
) -> Deal:
    title = title.strip()
    if not title:
        raise ServiceError("invalid_title", "A deal needs a title.", field="title")
    if stage is not None:
        pipeline = stage.pipeline if pipeline is None else pipeline
    pipeline = pipeline or default_pipeline()
    if stage is None:
        stage = pipeline.stages.order_by("position", "id").first()
        if stage is None:
            raise ServiceError("empty_pipeline", "This pipeline has no stages.", field="pipeline")
    if stage.pipeline_id != pipeline.pk:
        raise ServiceError("invalid_stage", "The stage belongs to another pipeline.", field="stage")
    deal = Deal(title=title[:200], pipeline=pipeline, stage=stage, status=status_for(stage))
    _apply_deal_fields(deal, fields)
    if deal.status != Deal.Status.OPEN:
        deal.closed_at = timezone.now()
    deal.save()
    DealStageChange.objects.create(deal=deal, from_stage=None, to_stage=stage, changed_by=by)
    return deal


def _apply_deal_fields(deal: Deal, fields: Mapping[str, Any]) -> None:
    for field, value in fields.items():
        if field == "value":
            deal.value = _clean_deal_value(value)
        elif field == "currency":
            code = str(value or "").strip().upper()
            if len(code) != 3 or not code.isalpha():
                raise ServiceError(
                    "invalid_currency",
                    "The currency is a 3-letter ISO code.",
                    field="currency",
                )
            deal.currency = code
        elif field == "title":
            title = str(value or "").strip()
            if not title:
                raise ServiceError("invalid_title", "A deal needs a title.", field="title")
            deal.title = title[:200]
        elif field in ("contact", "company", "owner", "expected_close_date"):
            setattr(deal, field, value)
        else:
            raise ServiceError("unknown_field", f"'{field}' cannot be set.", field=field)


@transaction.atomic
def update_deal(*, deal: Deal, stage: Stage | None = None, by: User | None = None, **fields: Any) -> Deal:
    _apply_deal_fields(deal, fields)
    deal.save()
    if stage is not None and stage.pk != deal.stage_id:
        move_deal(deal=deal, stage=stage, by=by)
    return deal


@transaction.atomic
def move_deal(*, deal: Deal, stage: Stage, by: User | None = None) -> Deal:
    """Moves a deal to a stage of its pipeline, records the change and derives won/lost from the stage."""
    if stage.pipeline_id != deal.pipeline_id:
        raise ServiceError("invalid_stage", "The stage belongs to another pipeline.", field="stage")
    if stage.pk == deal.stage_id:
        return deal
    previous = deal.stage_id
    deal.stage = stage
    status = status_for(stage)
    if status != deal.status:
        deal.closed_at = None if status == Deal.Status.OPEN else timezone.now()
    deal.status = status
    deal.save(update_fields=["stage", "status", "closed_at", "updated_at"])
    DealStageChange.objects.create(deal=deal, from_stage_id=previous, to_stage=stage, changed_by=by)
    return deal
