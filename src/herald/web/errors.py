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

An HTML error under ``/admin`` for someone signed in is a page of the admin, in its
frame (navigation for their role, account menu) with a way back; the session is the one
auth's dependency left on ``request.state.session``, or, where no route looked (an
unknown path), the one :class:`SessionLookup` finds (auth's, provided through the app
state by the composition root). Signed out, elsewhere, or for JSON and text: the plain
error page or body, as before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
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
from herald.web.pages import page
from herald.web.state import AppState

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


ADMIN_PREFIX = "/admin"
# Under here every error is an RFC 9457 problem document (application/problem+json).
PROBLEM_PREFIX = "/api/v1/"
PROBLEM_MEDIA_TYPE = "application/problem+json"

# Said instead of a message that only repeats the title (Starlette's "Not Found" for an
# unknown path), on the signed-in error page.
_PLAIN_MESSAGES = {
    404: "There is no page at this address.",
    405: "This page does not answer that kind of request.",
}
# The signed-in page's headings, where they differ from the titles above.
_HEADINGS = {403: "Not allowed", 404: "Page not found"}
# The section a path belongs to: where its error page leads back to.
_SECTIONS = (
    ("/admin/issues", "/admin/issues", "all issues"),
    ("/admin/newsletters", "/admin/issues", "all issues"),
    ("/admin/subscribers", "/admin/subscribers", "all subscribers"),
    ("/admin/lists", "/admin/lists", "all lists"),
)
_DASHBOARD = ("/admin/dashboard", "the dashboard")


@dataclass(frozen=True)
class SessionLookup:
    """Finds who is signed in for an error page under ``/admin`` that no route's
    dependency got to (an unknown path): ``resolve`` leaves the session, or None, on
    ``request.state.session``, like auth's own dependency. Auth provides it (through the
    composition root); web/ knows only this shape."""

    resolve: Callable[[Request], Awaitable[object]]


def _admin_page(request: Request) -> bool:
    path = request.url.path
    under = path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/")
    return under and preferred_format(request) is Format.HTML


async def find_session(request: Request) -> None:
    """Before an HTML error under ``/admin``: make sure ``request.state.session`` says
    who is signed in (looked up once; None when signed out or the database is away)."""
    if hasattr(request.state, "session") or not _admin_page(request):
        return
    state: AppState | None = getattr(request.app.state, "herald", None)
    lookup = state.find(SessionLookup) if state is not None else None
    if lookup is None:
        return
    try:
        await lookup.resolve(request)
    except errors.HeraldError:  # the database is away: the signed-out page will do
        request.state.session = None


def _way_back(path: str, status: int) -> tuple[str, str]:
    """(href, label) of the page an error page leads back to."""
    if status != 403:
        for prefix, href, label in _SECTIONS:
            if path.startswith(prefix + "/") and path.rstrip("/") != href:
                return href, label
    return _DASHBOARD


def _signed_in_page(
    request: Request, status: int, message: str, headers: dict[str, str] | None
) -> Response | None:
    """The error as a page of the admin, for someone signed in; None otherwise."""
    user = getattr(request.state, "session", None)
    if user is None or not _admin_page(request):
        return None
    title = _TITLES.get(status, "Error")
    if message.strip().lower() == title.lower():
        message = _PLAIN_MESSAGES.get(status, message)
    message = message[:1].upper() + message[1:]  # services say "no such subscriber"
    if message and message[-1] not in ".!?)":
        message += "."
    back, back_label = _way_back(request.url.path, status)
    try:
        return page(
            request,
            "error.html",
            status_code=status,
            headers=headers,
            title=_HEADINGS.get(status, title),
            message=message,
            status=status,
            back=back,
            back_label=back_label,
        )
    except Exception:  # never let the error page fail the error: the plain one then
        log.exception("the signed-in error page failed", status=status)
        return None


def is_problem_path(path: str) -> bool:
    return path.startswith(PROBLEM_PREFIX) or path == PROBLEM_PREFIX.rstrip("/")


def problem(
    request: Request, status: int, code: str, message: str, extra: dict[str, Any] | None
) -> dict[str, Any]:
    """An RFC 9457 problem document. ``type`` is ``about:blank`` (the status says what
    kind of problem it is, ``title`` is its phrase); the extension members ``error`` (a
    stable code to branch on) and ``message`` (= ``detail``) are what Herald's JSON errors
    always carried, so clients of either shape keep working; ``errors`` lists the fields
    at fault (``[{"field", "detail"}]``) where there are any."""
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = _TITLES.get(status, "Error")
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": message,
        "instance": request.url.path,
        "error": code,
        "message": message,
    }
    extra = dict(extra or {})
    field = extra.get("field")
    if isinstance(field, str) and "errors" not in extra:
        extra["errors"] = [{"field": field, "detail": message}]
    body.update(extra)
    return body


def error_response(
    request: Request,
    status: int,
    code: str,
    message: str,
    *,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    if is_problem_path(request.url.path):
        return JSONResponse(
            problem(request, status, code, message, extra),
            status_code=status,
            headers=headers,
            media_type=PROBLEM_MEDIA_TYPE,
        )
    fmt = preferred_format(request)
    if fmt is Format.JSON:
        body: dict[str, Any] = {"error": code, "message": message, **(extra or {})}
        return JSONResponse(body, status_code=status, headers=headers)
    if fmt is Format.HTML:
        signed_in = _signed_in_page(request, status, message, headers)
        if signed_in is not None:
            return signed_in
        html = render(
            "error.html", title=_TITLES.get(status, "Error"), message=message, status=status
        )
        return HTMLResponse(html, status_code=status, headers=headers)
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
    if not isinstance(exc, FormError | errors.LoginRequired):  # those redirect
        await find_session(request)
    return herald_error_response(request, exc)


async def handle_request_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = []
    fields: list[dict[str, str]] = []
    for error in exc.errors():
        location = [
            str(part)
            for part in error.get("loc", ())
            if part not in {"body", "query", "path", "header"}
        ]
        field = ".".join(location) or "request"
        kind = error.get("type", "")
        said = "is missing" if kind == "missing" else str(error.get("msg", "is not valid"))
        problems.append(f"{field} is missing" if kind == "missing" else f"{field}: {said}")
        fields.append({"field": field, "detail": said})
    await find_session(request)
    extra = {"errors": fields} if is_problem_path(request.url.path) else None
    message = "; ".join(problems) or "invalid request"
    return error_response(request, 400, "invalid_request", message, extra=extra)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "Error")
    code = _TITLES.get(exc.status_code, "error").lower().replace(" ", "_")
    await find_session(request)
    return error_response(request, exc.status_code, code, message, headers=dict(exc.headers or {}))


async def handled_response(request: Request, exc: Exception) -> Response | None:
    """The response the app's exception handlers give ``exc``, or None for an exception
    they do not handle (a bug: the request middleware's 500). For code that must see the
    answer before it leaves the route (the API's idempotency store)."""
    if isinstance(exc, errors.HeraldError):
        return await handle_herald_error(request, exc)
    if isinstance(exc, RequestValidationError):
        return await handle_request_validation(request, exc)
    if isinstance(exc, StarletteHTTPException):
        return await handle_http_exception(request, exc)
    return None


def install(app: FastAPI) -> None:
    app.add_exception_handler(errors.HeraldError, handle_herald_error)
    app.add_exception_handler(RequestValidationError, handle_request_validation)
    app.add_exception_handler(StarletteHTTPException, handle_http_exception)
