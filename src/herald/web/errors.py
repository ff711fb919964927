"""The one place where errors become HTTP responses.

Domain code raises ``HeraldError`` subclasses; this module decides status
codes, headers and the body format (JSON, HTML or text, as the client asked).
A form handler's refusal is a :class:`FormError` (usually translated from a domain
error by :func:`form_errors`): a flash on the page it redirects back to (303).
Anything unexpected is logged with its traceback and answered with a 500 that
carries the request id (so an operator can find the log line), never details.

:func:`herald_error_response` is the mapping; the exception handlers installed on
the app and the plain ASGI middleware (the body limit, outside those handlers) both
answer through it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)

from herald.core import errors
from herald.core.config import Settings
from herald.core.telemetry import get_logger
from herald.core.templating import render
from herald.web import flash
from herald.web.cookies import SESSION_COOKIE
from herald.web.negotiate import Format, preferred_format

log = get_logger("herald.web")


_STATUS: list[tuple[type[errors.HeraldError], int, str]] = [
    (errors.ValidationError, 400, "invalid_request"),
    (errors.Unauthorized, 401, "unauthorized"),
    (errors.Forbidden, 403, "forbidden"),
    (errors.NotFound, 404, "not_found"),
    (errors.Conflict, 409, "conflict"),
    (errors.PayloadTooLarge, 413, "payload_too_large"),
    (errors.UnprocessableRequest, 422, "unprocessable"),
    (errors.UnsupportedMediaType, 415, "unsupported_media_type"),
    (errors.RateLimited, 429, "rate_limited"),
    (errors.Unavailable, 503, "unavailable"),
]

_TITLES = {
    400: "Bad request",
    401: "Not authorised",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request too large",
    415: "Unsupported media type",
    422: "Unprocessable request",
    429: "Too many requests",
    500: "Something went wrong",
    503: "Temporarily unavailable",
}


def error_response(
    request: Request,
    status: int,
    code: str,
    message: str,
    *,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    fmt = preferred_format(request)
    if fmt is Format.JSON:
        body: dict[str, Any] = {"error": code, "message": message, **(extra or {})}
        return JSONResponse(body, status_code=status, headers=headers)
    if fmt is Format.HTML:
        page = render(
            "error.html", title=_TITLES.get(status, "Error"), message=message, status=status
        )
        return HTMLResponse(page, status_code=status, headers=headers)
    return PlainTextResponse(message + "\n", status_code=status, headers=headers)


def _classify(exc: errors.HeraldError) -> tuple[int, str]:
    for cls, status, code in _STATUS:
        if isinstance(exc, cls):
            return status, code
    return 500, "internal_error"


class FormError(errors.HeraldError):
    """A form post refused with a message for the person who sent it: the answer is a
    303 to ``redirect_to`` carrying ``message`` as a flash of ``level``."""

    def __init__(self, message: str, *, redirect_to: str, level: flash.Level = "error") -> None:
        super().__init__(message)
        self.redirect_to = redirect_to
        self.level = level


@contextmanager
def form_errors(
    redirect_to: str, *kinds: type[errors.HeraldError], message: str | None = None
) -> Iterator[None]:
    """Within the block, an error of one of ``kinds`` becomes a :class:`FormError`: its
    message (or ``message``) flashed on ``redirect_to``. Other errors pass unchanged."""
    try:
        yield
    except kinds as exc:
        raise FormError(message or exc.message, redirect_to=redirect_to) from exc


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.herald.settings
    return settings


def herald_error_response(request: Request, exc: errors.HeraldError) -> Response:
    """The response for a ``HeraldError``: status, headers and body as the client asked."""
    if isinstance(exc, FormError):
        return flash.redirect(exc.redirect_to, _settings(request), exc.message, exc.level)
    if isinstance(exc, errors.LoginRequired):
        response = RedirectResponse("/login", status_code=303)
        if request.cookies.get(SESSION_COOKIE):
            response.delete_cookie(SESSION_COOKIE, path="/")
        return response
    status, code = _classify(exc)
    headers: dict[str, str] = {}
    extra: dict[str, Any] = {}
    if isinstance(exc, errors.Unauthorized) and exc.challenge:
        headers["WWW-Authenticate"] = exc.challenge
    if isinstance(exc, errors.RateLimited | errors.Unavailable):
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, errors.ValidationError) and exc.field:
        extra["field"] = exc.field
    if status >= 500:
        log.warning("request failed", status=status, error=exc.message)
    return error_response(request, status, code, exc.message, headers=headers, extra=extra)


async def handle_herald_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.HeraldError)
    return herald_error_response(request, exc)


async def handle_request_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for error in exc.errors():
        location = [str(part) for part in error.get("loc", ()) if part not in {"body", "query"}]
        field = ".".join(location) or "request"
        kind = error.get("type", "")
        problems.append(f"{field} is missing" if kind == "missing" else f"{field}: {error['msg']}")
    return error_response(request, 400, "invalid_request", "; ".join(problems) or "invalid request")


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "Error")
    code = _TITLES.get(exc.status_code, "error").lower().replace(" ", "_")
    return error_response(request, exc.status_code, code, message, headers=dict(exc.headers or {}))


def install(app: FastAPI) -> None:
    app.add_exception_handler(errors.HeraldError, handle_herald_error)
    app.add_exception_handler(RequestValidationError, handle_request_validation)
    app.add_exception_handler(StarletteHTTPException, handle_http_exception)
