"""ChannelError is a core.errors.ServiceError: the API's and the pages' one handler answer it with a
status that follows its code."""

from __future__ import annotations

import pytest

from core.errors import ServiceError
from whatsapp.services import ChannelError


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("invalid_ids", 400),
        ("missing_token", 400),
        ("owner_only", 403),
        ("number_taken", 409),
        ("token_invalid", 422),
        ("number_not_verified", 422),
        ("graph_unavailable", 503),
    ],
)
def test_each_refusal_answers_its_status_in_the_one_shape(code, status):
    error = ChannelError(code, "Refused.")
    assert isinstance(error, ServiceError)
    assert error.status == status
    assert error.body() == {"error": {"code": code, "message": "Refused.", "details": {}}}


def test_a_field_and_an_explicit_status_still_win():
    error = ChannelError("missing_token", "An access token is required.", field="access_token", status=422)
    assert error.status == 422
    assert error.details == {"access_token": ["An access token is required."]}
