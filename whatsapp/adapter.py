"""The Cloud API channel as conversations sees it: the adapter registered for the provider "cloud_api"
in WhatsappConfig.ready(). It queues sends and read receipts on this app's actors, uploads and
re-downloads media, and checks Meta's message templates."""

from __future__ import annotations

from typing import Any

from django.utils.translation import ngettext

from conversations import channels
from conversations.channels import PreparedTemplate
from conversations.errors import MessageRejected
from whatsapp.models import MessageTemplate

PROVIDER = "cloud_api"


class CloudApiAdapter:
    provider = PROVIDER
    label = "WhatsApp Cloud API"
    capabilities = frozenset(
        {
            channels.TEMPLATES,
            channels.INTERACTIVE,
            channels.REACTIONS,
            channels.READ_RECEIPTS,
            channels.TYPING,
            channels.SERVICE_WINDOW,
        }
    )

    def enqueue_send(self, *, message_id: int, bulk: bool, schema: str) -> None:
        from whatsapp.actors import enqueue_delivery  # the actors module loads the broker: not at ready()

        enqueue_delivery(message_id=message_id, bulk=bulk, schema=schema)

    def enqueue_read_receipt(self, *, message_id: int, schema: str, typing: bool) -> None:
        from whatsapp.actors import enqueue_read_receipt

        enqueue_read_receipt(message_id=message_id, schema=schema, typing=typing)

    def upload_media(
        self, *, channel: Any, content: bytes, filename: str, mime_type: str, kind: str = ""
    ) -> Any:
        from whatsapp import services

        return services.upload_media(
            channel=channel, content=content, filename=filename, mime_type=mime_type, kind=kind
        )

    def retry_media_download(self, *, media: Any) -> Any:
        from whatsapp import services

        return services.retry_media_download(media=media)

    def prepare_template(
        self, *, channel: Any, template: Any, language: str | None, parameters: Any
    ) -> PreparedTemplate:
        """Templates are allowed outside the 24-hour window; the parameters are checked before queueing."""
        if isinstance(template, int):
            found = MessageTemplate.objects.filter(pk=template).first()
            if found is None:
                raise MessageRejected("unknown_template", f"No template with the id {template}.")
            template = found
        elif template is None or isinstance(template, str):
            candidates = MessageTemplate.objects.filter(waba_id=channel.waba_id, name=template or "")
            if language:
                candidates = candidates.filter(language=language)
            found = candidates.order_by("language").first()
            if found is None:
                raise MessageRejected(
                    "unknown_template",
                    f"No template '{template}' ({language or 'any language'}) for this number.",
                )
            template = found
        if template.waba_id != channel.waba_id:
            raise MessageRejected("unknown_template", "The template belongs to another WhatsApp account.")
        if not template.is_approved:
            raise MessageRejected(
                "template_not_approved",
                f"The template '{template.name}' is {template.status or 'not approved'}.",
            )
        components, preview = template_components(template, parameters)
        body: dict[str, Any] = {"name": template.name, "language": {"code": template.language}}
        if components:
            body["components"] = components
        return PreparedTemplate(
            template_id=template.pk,
            name=template.name,
            category=template.category or "",
            payload={"template": body, "template_id": template.pk},
            preview=preview,
        )

    def template_category(self, *, template_id: int) -> str:
        found = MessageTemplate.objects.filter(pk=template_id).values_list("category", flat=True).first()
        return found or ""

    def approved_templates(self, *, channel: Any) -> list[Any]:
        return [
            t
            for t in MessageTemplate.objects.filter(waba_id=channel.waba_id).order_by("name", "language")
            if t.is_approved
        ]

    def number_status(self, *, channel: Any) -> str:
        return str(channel.unavailable_reason)


def template_components(template: MessageTemplate, parameters: Any) -> tuple[list[dict[str, Any]], str]:
    """Check the parameters against the template's placeholders; build Meta's components and a preview."""
    if isinstance(parameters, list | tuple):
        parameters = {"body": list(parameters)}
    parameters = dict(parameters or {})
    named = template.parameter_format.upper() == "NAMED"
    components: list[dict[str, Any]] = []
    problems: dict[str, str] = {}

    def text_params(values: Any, placeholders: list[str], where: str) -> list[dict[str, Any]]:
        if named:
            values = values if isinstance(values, dict) else {}
            missing = [p for p in placeholders if p not in values]
            extra = [k for k in values if k not in placeholders]
            if missing or extra:
                problems[where] = f"expects {placeholders}; missing {missing}, unexpected {extra}"
            return [
                {"type": "text", "parameter_name": p, "text": str(values.get(p, ""))} for p in placeholders
            ]
        values = (
            list(values) if isinstance(values, list | tuple) else ([] if values in (None, "") else [values])
        )
        if len(values) != len(placeholders):
            expected = ngettext("%(n)d parameter", "%(n)d parameters", len(placeholders)) % {
                "n": len(placeholders)
            }
            problems[where] = f"takes {expected}; {len(values)} given"
        return [{"type": "text", "text": str(v)} for v in values]

    header_format = template.header_format()
    header_value = parameters.get("header")
    if header_format in ("IMAGE", "VIDEO", "DOCUMENT"):
        kind = header_format.lower()
        if not isinstance(header_value, dict) or not (header_value.get("id") or header_value.get("link")):
            problems["header"] = f"needs a {kind} ({{'id': media id}} or {{'link': url}})"
        else:
            media = {k: v for k, v in header_value.items() if k in ("id", "link", "filename")}
            components.append({"type": "header", "parameters": [{"type": kind, kind: media}]})
    elif header_format == "TEXT":
        placeholders = template.header_placeholders()
        if placeholders or header_value:
            params = text_params(header_value, placeholders, "header")
            if placeholders:
                components.append({"type": "header", "parameters": params})
    body_placeholders = template.body_placeholders()
    body_values = parameters.get("body", {} if named else [])
    body_params = text_params(body_values, body_placeholders, "body")
    if body_placeholders:
        components.append({"type": "body", "parameters": body_params})
    button_values = parameters.get("buttons") or {}
    if isinstance(button_values, list):
        button_values = dict(enumerate(button_values))
    button_values = {int(k): v for k, v in button_values.items()}
    buttons = (template.component("BUTTONS") or {}).get("buttons", [])
    for index, _placeholders in template.button_placeholders().items():
        if index not in button_values:
            problems[f"buttons.{index}"] = "needs a parameter"
            continue
        kind = str(buttons[index].get("type", "")).upper()
        param = (
            {"type": "coupon_code", "coupon_code": str(button_values[index])}
            if kind == "COPY_CODE"
            else {"type": "text", "text": str(button_values[index])}
        )
        components.append(
            {"type": "button", "sub_type": kind.lower(), "index": str(index), "parameters": [param]}
        )
    unexpected = set(button_values) - set(template.button_placeholders())
    if unexpected:
        problems["buttons"] = f"buttons {sorted(unexpected)} take no parameter"
    if problems:
        raise MessageRejected(
            "template_parameters",
            f"The parameters do not match the template '{template.name}': "
            + "; ".join(f"{k} {v}" for k, v in problems.items()),
            problems,
        )
    values: Any = body_values if named else list(body_values or [])
    preview = template.render_body(values) or template.name
    return components, preview
