"""Cross-cutting HTTP concerns as plain ASGI middleware (cheap, and streaming-safe).

* ``RequestContextMiddleware``: one request id per request (``X-Request-ID`` if
  the client sent a sane one, otherwise generated), bound to every log line of
  the request and echoed back; then one access-log line with method, route
  template, status and latency — at debug level for a successful call to a *quiet*
  route (the providers' webhooks: a bounce storm is 100,000 calls a minute, which
  their recorder already logs a line per batch of), at info for everything else.
  The request's server span (when tracing is on) is named by the route template.
  Unhandled exceptions end here: logged with their traceback, answered with a
  500 that names the request id.
* ``BodySizeLimitMiddleware``: bodies over the limit get 413 — by
  ``Content-Length`` before anything is read, or while streaming a chunked body
  (``receive`` raises ``PayloadTooLarge``) — answered through ``web/errors.py``'s
  mapping like every other error. 64 KiB by default; the app assembly gives named
  routes their own limit (the issue forms: 2 MiB).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from starlette.requests import Request
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from herald.core import tracing
from herald.core.errors import PayloadTooLarge
from herald.core.telemetry import get_logger
from herald.web import metrics
from herald.web.errors import error_response, herald_error_response

log = get_logger("herald.access")

MIB = 1024 * 1024
MAX_BODY_BYTES = 64 * 1024
BODY_LIMIT_SCOPE_KEY = "herald.max_body_bytes"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            decoded: str = value.decode("latin-1")
            return decoded
    return None


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else metrics.UNMATCHED


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, quiet_prefixes: Sequence[str] = ()) -> None:
        self.app = app
        # Route templates starting with one of these log their successes at debug level.
        self.quiet_prefixes = tuple(quiet_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = (
            incoming if incoming and _SANE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        )
        scope.setdefault("state", {})["request_id"] = request_id
        status_holder: dict[str, Any] = {"status": 500, "started": False}
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                if tracing.recording():  # a sampled request (one ContextVar read)
                    tracing.name_server_span(scope["method"], _route_template(scope))
                status_holder["status"] = message["status"]
                status_holder["started"] = True
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        metrics.IN_FLIGHT.inc()
        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            except Exception as exc:
                log.error("unhandled error", exc_info=exc)
                if not status_holder["started"]:
                    response = error_response(
                        Request(scope),
                        500,
                        "internal_error",
                        f"internal error (request id {request_id}); it has been logged",
                    )
                    await response(scope, receive, send_with_id)
            finally:
                metrics.IN_FLIGHT.dec()
                elapsed = time.perf_counter() - started
                route = _route_template(scope)
                status = status_holder["status"]
                metrics.REQUEST_DURATION.labels(
                    metrics.method_label(scope["method"]), route, metrics.status_class(status)
                ).observe(elapsed)
                quiet = status < 400 and route.startswith(self.quiet_prefixes)
                (log.debug if quiet else log.info)(
                    "request",
                    method=scope["method"],
                    route=route,
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                )


def describe_size(size: int) -> str:
    """``2 MiB``, ``64 KiB``: how a limit is named in messages."""
    if size % MIB == 0:
        return f"{size // MIB} MiB"
    return f"{size / 1024:g} KiB"


def too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"request body too large: the limit is {describe_size(max_bytes)}")


@dataclass(frozen=True, slots=True)
class RouteBodyLimit:
    """``max_bytes`` for requests with this method to a path matching ``template``
    (``/admin/issues/{issue_id}/edit``: the route's own path syntax)."""

    method: str
    template: str
    max_bytes: int
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pattern", compile_path(self.template)[0])

    def applies_to(self, method: str, path: str) -> bool:
        return method == self.method and self.pattern.match(path) is not None


class BodySizeLimitMiddleware:
    """64 KiB by default; a route listed in ``routes`` gets its own limit.

    The limit chosen is left in the scope (``BODY_LIMIT_SCOPE_KEY``) so that form
    parsing can let one field be as large as the whole body may be.

    Once ``receive`` has raised ``PayloadTooLarge``, whatever the app makes of it (its
    error handler's 413, or the 400 FastAPI's body parser turns any error from
    ``receive`` into) is dropped and the 413 is answered here, through the mapping.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int = MAX_BODY_BYTES,
        routes: Sequence[RouteBodyLimit] = (),
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.routes = tuple(routes)

    def limit_for(self, scope: Scope) -> int:
        path: str = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        for entry in self.routes:
            if entry.applies_to(scope["method"], path):
                return entry.max_bytes
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.limit_for(scope)
        scope[BODY_LIMIT_SCOPE_KEY] = max_bytes
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            await _reject(scope, receive, send, too_large(max_bytes))
            return
        received = 0
        refused: PayloadTooLarge | None = None
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    refused = too_large(max_bytes)
                    raise refused
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            if refused is not None and not response_started:
                return  # the app's answer to a refused body: the 413 below replaces it
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if refused is None:
                raise
        if refused is not None and not response_started:
            await _reject(scope, receive, send, refused)


async def _reject(scope: Scope, receive: Receive, send: Send, exc: PayloadTooLarge) -> None:
    """Answer through the one error mapping; close the connection (the body is unread)."""
    response = herald_error_response(Request(scope), exc)
    response.headers["connection"] = "close"
    await response(scope, receive, send)
