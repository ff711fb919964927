"""A Postmark-compatible HTTP sink: the far end of ``PostmarkProvider`` in tests and benchmarks.

In-process (async tests)::

    async with PostmarkSink(token="t") as sink:
        provider = PostmarkProvider(settings_pointing_at(sink.base_url))
        sink.fail_next(3)                  # next 3 requests answer 500
        sink.rate_limit_next(retry_after=1)
        sink.reject_recipients({"gone@example.test"}, error_code=406)
        sink.hanging = True                # requests wait, unanswered, until set back to False

Standalone (a benchmark target; prints ``READY http://127.0.0.1:P`` once listening)::

    python tests/support/postmark_sink.py --port P [--delay-ms N] [--token T] [--count-recipients]

A standalone sink is steered and read over HTTP, for the fault drills in ``bench/``:

* ``POST /_sink/mode`` with ``{"mode": "ok" | "error" | "rate_limit" | "hang",
  "status": 500, "retry_after": 1}`` switches every later answer (a storm; see
  :meth:`PostmarkSink.set_mode`);
* ``GET /_sink/stats`` answers the request counts (per path and per mode) and the messages
  accepted; with ``--count-recipients`` also how many distinct recipients were reached and
  how many messages were duplicates, and ``?recipients=1`` adds every recipient's count.

It answers the way Postmark does where Herald depends on it (contract §3): ``/email`` gets
an object, ``/email/batch`` an array with one ``ErrorCode``/``MessageID`` result per
message; a wrong or missing server token is a 401 when the sink was given one. The hot
path does as little as possible so the sink, not the client, is never the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import secrets
import signal
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

TOKEN_HEADER = "X-Postmark-Server-Token"
BATCH_LIMIT = 500
INACTIVE_RECIPIENT = "You tried to send to recipient(s) that have been marked as inactive."
# A batch of 500 rich messages is well over aiohttp's default 1 MiB request limit.
MAX_REQUEST_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ForcedResponse:
    """One scripted answer; ``body`` is JSON-encoded unless it is already ``bytes``."""

    status: int
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)


def _json_response(
    status: int, data: Any, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(data).encode(),
        content_type="application/json",
        headers=headers,
    )


MODES = ("ok", "error", "rate_limit", "hang")


def _invalid(item: Any) -> bool:
    return not isinstance(item, dict) or not item.get("From") or not item.get("To")


class PostmarkSink:
    """See the module docstring. ``messages`` holds every accepted message as sent (when
    ``record`` is on), ``requests`` counts requests per path, ``message_ids`` maps each
    ``MessageID`` handed out to its recipient, ``last_headers`` are the latest request's.
    ``receipts`` counts accepted messages per recipient (when ``count_recipients`` is on:
    far cheaper than ``record`` for a benchmark's hundred thousand messages) and
    ``requests_by_mode`` counts requests by the :meth:`set_mode` mode they arrived in."""

    def __init__(
        self,
        *,
        token: str | None = None,
        delay_ms: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        record: bool = True,
        count_recipients: bool = False,
    ) -> None:
        self.token = token
        self.delay_seconds = delay_ms / 1000
        self.host = host
        self.port = port
        self.record = record
        self.count_recipients = count_recipients
        self.receipts: Counter[str] = Counter()
        self.mode = "ok"
        self.requests_by_mode: Counter[str] = Counter()
        self._storm: ForcedResponse | None = None
        self.messages: list[dict[str, Any]] = []
        self.message_ids: dict[str, str] = {}
        self.requests: Counter[str] = Counter()
        self.accepted = 0
        self.in_flight = 0  # requests being answered (a delayed answer counts until sent)
        self.last_headers: Mapping[str, str] = {}
        self.recipient_errors: dict[str, tuple[int, str]] = {}
        self._script: deque[ForcedResponse] = deque()
        self._released = asyncio.Event()
        self._released.set()
        self._ids = itertools.count(1)
        self._id_prefix = secrets.token_hex(4)
        self._runner: web.AppRunner | None = None

    # -- behaviour knobs -------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def hanging(self) -> bool:
        return not self._released.is_set()

    @hanging.setter
    def hanging(self, value: bool) -> None:
        if value:
            self._released.clear()
        else:
            self._released.set()

    def respond_next(
        self,
        status: int,
        body: Any = None,
        *,
        times: int = 1,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer the next ``times`` requests (either path) with this, before any checks
        but the token's."""
        forced = ForcedResponse(status, body, dict(headers or {}))
        self._script.extend(itertools.repeat(forced, times))

    def fail_next(self, times: int = 1, *, status: int = 500) -> None:
        self.respond_next(status, {"ErrorCode": 1, "Message": "Internal error"}, times=times)

    def rate_limit_next(self, *, retry_after: float | str = 1, times: int = 1) -> None:
        self.respond_next(
            429,
            {"ErrorCode": 429, "Message": "Rate limit exceeded"},
            times=times,
            headers={"Retry-After": str(retry_after)},
        )

    def reject_next(
        self,
        error_code: int = 300,
        message: str = "Invalid email request",
        *,
        status: int = 422,
        times: int = 1,
    ) -> None:
        self.respond_next(status, {"ErrorCode": error_code, "Message": message}, times=times)

    def reject_recipients(
        self,
        recipients: Iterable[str],
        *,
        error_code: int = 406,
        message: str = INACTIVE_RECIPIENT,
    ) -> None:
        """Refuse these addresses: 422 on ``/email``, that item's ``ErrorCode`` in a batch."""
        for recipient in recipients:
            self.recipient_errors[recipient] = (error_code, message)

    def set_mode(self, mode: str, *, status: int = 500, retry_after: float | str = 1) -> None:
        """Answer every later request the same way until the mode changes (a storm):

        * ``ok``: normally;
        * ``error``: HTTP ``status`` (a 5xx) with Postmark's error body;
        * ``rate_limit``: 429 with ``Retry-After: retry_after``;
        * ``hang``: read the request, then never answer (until the mode changes, when the
          held requests get a 503), so the client's own timeout has to fire.
        """
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {MODES}")
        storm = None
        if mode == "error":
            storm = ForcedResponse(status, {"ErrorCode": 1, "Message": "Internal error"})
        elif mode == "rate_limit":
            storm = ForcedResponse(
                429,
                {"ErrorCode": 429, "Message": "Rate limit exceeded"},
                {"Retry-After": str(retry_after)},
            )
        self.mode = mode
        self._storm = storm
        self.hanging = mode == "hang"

    def stats(self, *, recipients: bool = False) -> dict[str, Any]:
        """What the sink has seen so far (``GET /_sink/stats``)."""
        data: dict[str, Any] = {
            "mode": self.mode,
            "requests": dict(self.requests),
            "requests_by_mode": dict(self.requests_by_mode),
            "accepted": self.accepted,
        }
        if self.count_recipients:
            receipts = self.receipts
            data["recipients_reached"] = len(receipts)
            data["duplicates"] = self.accepted - len(receipts)
            if recipients:
                data["recipients"] = dict(receipts)
        return data

    # -- life cycle ------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        app.router.add_post("/email", self._handle)
        app.router.add_post("/email/batch", self._handle)
        app.router.add_post("/_sink/mode", self._control_mode)
        app.router.add_get("/_sink/stats", self._control_stats)
        # No access log (it would dominate the cost of a request) and a short shutdown
        # grace period (hung requests must not hold a test's teardown for a minute).
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        self.port = site.port

    async def stop(self) -> None:
        self.hanging = False
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> PostmarkSink:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- request handling ------------------------------------------------------------

    async def _control_mode(self, request: web.Request) -> web.Response:
        try:
            data = await request.json()
            self.set_mode(
                str(data["mode"]),
                status=int(data.get("status", 500)),
                retry_after=data.get("retry_after", 1),
            )
        except (ValueError, KeyError, TypeError) as exc:
            return _json_response(400, {"error": str(exc)})
        return _json_response(200, {"mode": self.mode})

    async def _control_stats(self, request: web.Request) -> web.Response:
        return _json_response(200, self.stats(recipients=bool(request.query.get("recipients"))))

    async def _handle(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        try:
            return await self._answer(request)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request) -> web.Response:
        path = request.path
        self.requests[path] += 1
        self.requests_by_mode[self.mode] += 1
        self.last_headers = request.headers
        body = await request.read()  # like a real server: the body first, then the work
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        if self.token is not None and request.headers.get(TOKEN_HEADER) != self.token:
            return _json_response(
                401, {"ErrorCode": 10, "Message": "Bad or missing Server API token"}
            )
        if not self._released.is_set():
            await self._released.wait()
            return _json_response(503, {"ErrorCode": 1, "Message": "Released from hang mode"})
        forced = self._storm or (self._script.popleft() if self._script else None)
        if forced is not None:
            raw = forced.body
            return web.Response(
                status=forced.status,
                body=raw if isinstance(raw, bytes) else json.dumps(raw).encode(),
                content_type="application/json",
                headers=forced.headers,
            )
        try:
            payload = json.loads(body)
        except ValueError:
            return _json_response(422, {"ErrorCode": 402, "Message": "Received invalid JSON"})
        if path == "/email":
            return self._single(payload)
        return self._batch(payload)

    def _single(self, payload: Any) -> web.Response:
        if _invalid(payload):
            return _json_response(422, {"ErrorCode": 300, "Message": "Invalid email request"})
        refusal = self.recipient_errors.get(payload["To"])
        if refusal is not None:
            return _json_response(422, {"ErrorCode": refusal[0], "Message": refusal[1]})
        return _json_response(200, self._accept(payload, _now()))

    def _batch(self, payload: Any) -> web.Response:
        if not isinstance(payload, list):
            return _json_response(422, {"ErrorCode": 402, "Message": "Expected a JSON array"})
        if len(payload) > BATCH_LIMIT:
            message = f"Batch is limited to {BATCH_LIMIT} messages"
            return _json_response(422, {"ErrorCode": 300, "Message": message})
        now = _now()
        errors = self.recipient_errors
        results: list[dict[str, Any]] = []
        for item in payload:
            if _invalid(item):
                results.append({"ErrorCode": 300, "Message": "Invalid email request"})
                continue
            refusal = errors.get(item["To"]) if errors else None
            if refusal is not None:
                results.append({"To": item["To"], "ErrorCode": refusal[0], "Message": refusal[1]})
            else:
                results.append(self._accept(item, now))
        return _json_response(200, results)

    def _accept(self, item: dict[str, Any], submitted_at: str) -> dict[str, Any]:
        message_id = f"{self._id_prefix}-{next(self._ids):012d}"
        self.accepted += 1
        if self.count_recipients:
            self.receipts[item["To"]] += 1
        if self.record:
            self.messages.append(item)
            self.message_ids[message_id] = item["To"]
        return {
            "To": item["To"],
            "SubmittedAt": submitted_at,
            "MessageID": message_id,
            "ErrorCode": 0,
            "Message": "OK",
        }


def _now() -> str:
    return datetime.now(UTC).isoformat()


async def _serve(args: argparse.Namespace) -> None:
    sink = PostmarkSink(
        token=args.token,
        delay_ms=args.delay_ms,
        host=args.host,
        port=args.port,
        record=False,
        count_recipients=args.count_recipients,
    )
    await sink.start()
    print(f"READY {sink.base_url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await sink.stop()
    print(f"STOPPED requests={dict(sink.requests)} accepted={sink.accepted}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="added to every request")
    parser.add_argument("--token", default=None, help="require this X-Postmark-Server-Token")
    parser.add_argument(
        "--count-recipients",
        action="store_true",
        help="count accepted messages per recipient (GET /_sink/stats reports them)",
    )
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:
        asyncio.run(_serve(args))
    else:
        uvloop.run(_serve(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
