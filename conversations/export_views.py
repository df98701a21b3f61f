"""Settings → Data export: the owner downloads contacts, conversations and messages (CSV and JSON, one
zip) made as it downloads (conversations.data_export). Owners only: it is every customer's data at once;
admins manage the workspace but do not take its data out, and agents never."""

from __future__ import annotations

from django.http import HttpRequest, StreamingHttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from conversations.data_export import export_stream
from conversations.selectors import viewer_for
from core import audit
from crm.views import member_required


@require_GET
@member_required("owner")
def download(request: HttpRequest) -> StreamingHttpResponse:
    tenant = request.tenant  # type: ignore[attr-defined]
    audit.record("export.created", target=("data_export", "", "contacts, conversations, messages"))
    response = StreamingHttpResponse(
        export_stream(viewer=viewer_for(request.user), schema=tenant.schema_name),
        content_type="application/zip",
    )
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="{tenant.slug}-data-{stamp}.zip"'
    response["Cache-Control"] = "no-store"
    return response
