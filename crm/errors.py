"""The error services raise: pages show it next to the field, the API answers it in the error shape.

No imports of DRF here: services import this, and DRF's settings import the authentication, which
imports services.
"""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """A business rule refused the write: raised by services, shown by pages, answered by the API.

    `field` names the input at fault (validation errors name the field); `status_code` is what the API
    answers (400 unless the rule says otherwise, e.g. 409 for a conflict).
    """

    def __init__(self, code: str, message: str, *, field: str | None = None, status_code: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.status_code = status_code

    @property
    def details(self) -> dict[str, Any]:
        return {self.field: [self.message]} if self.field else {}
