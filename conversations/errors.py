"""The conversations app's refusals: kinds of core.errors.ServiceError, so the API's one exception
handler and the pages' one helper answer them like any other service error."""

from __future__ import annotations

from typing import Any

from core.errors import ServiceError


class MessageRejected(ServiceError):
    """A send the rules refuse (window, consent, block, the number, the draft's content): 422 with a
    stable code."""

    status = 422

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(code, message, details=details, **kwargs)


class MediaRejected(ServiceError):
    """A file the channel refuses to send or fetch (kind, type, size, the number's state): 422; a
    download that cannot be retried now is a 409 (raised with status=409)."""

    status = 422


class WorkflowError(ServiceError):
    """A workflow action that cannot be done; `code` is stable for API clients and tests, the status
    follows it: 404 not visible (never 403: no existence leak), 403 a role's limit, 409 a conflict,
    400 bad input (an unknown tag, assignee or status: the API has always answered these 400)."""

    STATUS = {"not_found": 404, "forbidden": 403, "already_assigned": 409}

    def __init__(self, code: str, message: str, **kwargs: Any) -> None:
        kwargs.setdefault("status", self.STATUS.get(code, 400))
        super().__init__(code, message, **kwargs)
