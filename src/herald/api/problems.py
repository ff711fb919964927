"""The JSON API's error documents as OpenAPI sees them (RFC 9457 problem details).

The documents themselves are made in one place, ``web/errors.py`` (``problem``), for
every error under ``/api/v1``; this module only declares their shape per operation, so
``/openapi.json`` and the schemathesis run check what is really sent.
"""

from __future__ import annotations

from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class FieldProblem(BaseModel):
    field: str = Field(description="The parameter or body field at fault (dotted path).")
    detail: str


class Problem(BaseModel):
    """An RFC 9457 problem document (``application/problem+json``)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "type": "about:blank",
                    "title": "Bad Request",
                    "status": 400,
                    "detail": "limit: Input should be less than or equal to 200",
                    "instance": "/api/v1/subscribers",
                    "error": "invalid_request",
                    "message": "limit: Input should be less than or equal to 200",
                    "errors": [
                        {"field": "limit", "detail": "Input should be less than or equal to 200"}
                    ],
                }
            ]
        },
    )

    type: str = Field(description="Always `about:blank`: the status says what happened.")
    title: str = Field(description="The status's phrase.")
    status: int
    detail: str = Field(description="What went wrong, for a person.")
    instance: str = Field(description="The path of the request.")
    error: str = Field(description="A stable code to branch on (`not_found`, `conflict` …).")
    message: str = Field(description="The same as `detail` (Herald's older JSON errors).")
    errors: list[FieldProblem] | None = Field(
        default=None, description="The fields at fault, for 400s about the input."
    )


_DESCRIPTIONS = {
    400: "The request is malformed or a value is invalid (`errors` names the fields).",
    401: "No valid API key or access token (`WWW-Authenticate: Bearer`).",
    403: "The credential's scope or its user's role does not allow this operation.",
    404: "No such resource.",
    409: "Conflicts with the current state, or the first request with this "
    "Idempotency-Key is still running.",
    413: "The request body is over the limit.",
    415: "The body is not in a format this operation reads.",
    422: "This Idempotency-Key was used for a different request.",
    429: "Too many attempts; retry after `Retry-After` seconds.",
}


def problem_responses(statuses: Iterable[int]) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route for these error statuses, each a :class:`Problem`
    (``web/docs.py`` files them under ``application/problem+json``)."""
    return {
        status: {
            "model": Problem,
            "description": _DESCRIPTIONS.get(status, HTTPStatus(status).phrase),
        }
        for status in statuses
    }
