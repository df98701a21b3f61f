"""The one error type: services raise it, the API answers it in the error shape, pages show it.

`ServiceError(code, message, field=, status=, details=)`: `code` is stable (clients branch on it),
`message` is for people, `field` names the input at fault, `status` is what HTTP answers (400 unless
the rule says otherwise: 404 not visible, 409 conflict, 422 refused by a business rule, 502/503 an
outside service). Subclasses only set a default status and group errors by concern.

No Django or DRF imports here: every layer imports this module.
"""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    status: int = 400

    def __init__(
        self,
        code: str,
        message: str,
        *,
        field: str | None = None,
        status: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        if status is not None:
            self.status = status
        self._details = details

    @property
    def status_code(self) -> int:
        return self.status

    @property
    def details(self) -> dict[str, Any]:
        if self._details is not None:
            return self._details
        return {self.field: [self.message]} if self.field else {}

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, self.details)


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The error shape every surface answers: {"error": {"code", "message", "details"}}."""
    return {"error": {"code": code, "message": message, "details": details or {}}}
