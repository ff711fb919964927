"""``GET /admin/live``: a WebSocket of live events for the dashboard's tiles.

Refused before the handshake completes (HTTP 403, as close code 1008 before accept)
unless the ``Origin`` is this site's (the request's own origin or ``HERALD_BASE_URL``'s:
a page elsewhere cannot use a visitor's cookie to listen) and the session cookie names a
live session. Then JSON text messages, one event each (``core/live.py``):

* ``hello`` at once; ``ping`` every :data:`HEARTBEAT_SECONDS` when nothing else was sent
  (the client treats a silent socket as dead; uvicorn's protocol pings find dead clients);
* ``subscriber.created`` / ``subscriber.confirmed`` / ``subscriber.unsubscribed`` /
  ``subscriber.deleted`` (``subscriber_id``; ``resubscribed: true`` on a ``created`` for
  an unsubscribed address signing up again), ``subscribers.changed`` (an action on a
  selection: ``action`` and ``count``), ``job.progress`` / ``job.finished`` (a bulk action
  over a filter, from whichever process runs it: ``herald.jobs.runner``), ``issue.status``
  (``issue_id``, ``status``) — NOTIFYed by the services that made the change, from any
  process, one per change that moves the dashboard's figures
  (``tests/integration/test_live_events.py``);
* ``issue.progress`` (``Progress.as_json()``): the workers' ``herald_progress``
  notifications, read once per process and coalesced to at most one event per issue
  every :data:`PROGRESS_INTERVAL_SECONDS`, whatever the number of sockets;
* ``resync`` after the process's listen connection came back (events may be lost), or
  in place of what was queued for this socket when a burst of events outran it.

Close codes: 1001 when the process drains (the client reconnects, elsewhere), 1008 when
the session ends (logout in any process, expiry; rechecked every
:data:`SESSION_RECHECK_SECONDS`), 1013 for a client too slow to keep up (its bounded
queue full while it took nothing for ``core.live.STALL_SECONDS``, or one send that
waited :data:`SEND_TIMEOUT_SECONDS`: the hub never waits for it), 1011 when the
database is unreachable.
A close frame waits for the socket to take writes again, at most
:data:`CLOSE_TIMEOUT_SECONDS`. On draining, the signal handling lets the web server's own
shutdown (which would close what is still open with 1012) begin only once every socket
has left its subscription (``LiveHub.wait_closed``; ``tests/e2e/test_live_load.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from fastapi import APIRouter
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from herald.auth.service import AuthService
from herald.auth.web import auth_service
from herald.core.errors import HeraldError
from herald.core.live import End, LiveHub, Subscription, event
from herald.core.telemetry import get_logger
from herald.issues.service import Progress
from herald.web.cookies import SESSION_COOKIE
from herald.web.state import state_of

log = get_logger("herald.admin.live")

router = APIRouter(prefix="/admin", tags=["admin"])

HEARTBEAT_SECONDS = 20.0
SEND_TIMEOUT_SECONDS = 10.0
# A close frame waits for the socket to take writes again: a client that stopped reading
# may never let it, and must not hold its handler (and its queue) for longer than this.
CLOSE_TIMEOUT_SECONDS = 10.0
SESSION_RECHECK_SECONDS = 2.0
PROGRESS_INTERVAL_SECONDS = 0.5

POLICY = 1008
GOING_AWAY = 1001
TRY_AGAIN_LATER = 1013
INTERNAL_ERROR = 1011
CLOSE_CODES = {End.DRAINING: GOING_AWAY, End.SESSION: POLICY, End.SLOW: TRY_AGAIN_LATER}
REASONS = {End.DRAINING: "server stopping", End.SESSION: "session ended", End.SLOW: "too slow"}


def _origin(url: str) -> str:
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return f"{scheme}://{parts.netloc}".lower()


def same_origin(websocket: WebSocket, public_base_url: str) -> bool:
    origin = websocket.headers.get("origin")
    if not origin:
        return False
    allowed = {_origin(public_base_url), _origin(str(websocket.base_url))}
    return origin.lower() in allowed


@router.websocket("/live")
async def live(websocket: WebSocket) -> None:
    state = state_of(websocket)
    if not same_origin(websocket, state.settings.public_base_url):
        await websocket.close(code=POLICY, reason="origin not allowed")
        return
    token = websocket.cookies.get(SESSION_COOKIE, "")
    auth = auth_service(state)
    try:
        session = await auth.resolve_session(token) if token else None
    except HeraldError as exc:
        log.warning("live socket refused", error=exc.message)
        await websocket.close(code=INTERNAL_ERROR)
        return
    if session is None:
        await websocket.close(code=POLICY, reason="sign in first")
        return
    hub = state.find(LiveHub)
    await websocket.accept()
    if hub is None or hub.draining or state.draining:
        await websocket.close(code=GOING_AWAY, reason=REASONS[End.DRAINING])
        return
    with hub.subscribe() as subscription:
        hello = event("hello", username=session.username, heartbeat=HEARTBEAT_SECONDS)
        subscription.offer(hello)
        reason = await _serve(websocket, subscription, lambda: _session_alive(auth, token))
    log.debug("live socket closed", reason=reason.value)


async def _session_alive(auth: AuthService, token: str) -> bool:
    try:
        return await auth.session_alive(token)
    except HeraldError:
        return True  # the database is away: keep the socket, ask again later


async def _serve(
    websocket: WebSocket, subscription: Subscription, alive: Callable[[], Awaitable[bool]]
) -> End:
    """Run the socket until its subscription ends, close it; the reason it ended."""

    async def send() -> None:
        while True:
            try:
                message = await asyncio.wait_for(subscription.get(), HEARTBEAT_SECONDS)
            except TimeoutError:
                message = event("ping")
            try:
                await asyncio.wait_for(websocket.send_text(message), SEND_TIMEOUT_SECONDS)
            except TimeoutError:
                subscription.end(End.SLOW)
                return
            except (WebSocketDisconnect, RuntimeError, OSError):
                subscription.end(End.GONE)
                return

    async def receive() -> None:
        # Whatever the client says is ignored; this notices it going away.
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
        subscription.end(End.GONE)

    async def watch_session() -> None:
        while True:
            await asyncio.sleep(SESSION_RECHECK_SECONDS)
            if not await alive():
                subscription.end(End.SESSION)
                return

    tasks = [
        asyncio.create_task(send(), name="live-send"),
        asyncio.create_task(receive(), name="live-receive"),
        asyncio.create_task(watch_session(), name="live-session"),
    ]
    ended = asyncio.create_task(subscription.ended())
    try:
        await asyncio.wait([ended, *tasks], return_when=asyncio.FIRST_COMPLETED)
        if subscription.reason is None:  # a task failed: logged, and the socket ends
            for task in tasks:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    log.error("live socket failed", exc_info=task.exception())
            subscription.end(End.GONE)
        assert subscription.reason is not None
        reason = subscription.reason
        # Close first, then stop the tasks: on draining, the close frame must go out before
        # uvicorn's own shutdown (which would close with 1012) gets to this connection.
        if reason is not End.GONE and websocket.client_state is WebSocketState.CONNECTED:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError, TimeoutError):
                close = websocket.close(code=CLOSE_CODES[reason], reason=REASONS[reason])
                await asyncio.wait_for(close, CLOSE_TIMEOUT_SECONDS)
    finally:
        for running in (ended, *tasks):
            running.cancel()
        await asyncio.gather(ended, *tasks, return_exceptions=True)
    return reason


class ProgressRelay:
    """``herald_progress`` notifications → ``issue.progress`` events, coalesced per issue.

    One read per issue per interval for the whole process (not per socket), and none while
    no socket is open; a notification during the wait or the read is never lost: one more
    read follows."""

    def __init__(
        self,
        hub: LiveHub,
        load: Callable[[uuid.UUID], Awaitable[Progress]],
        interval: float = PROGRESS_INTERVAL_SECONDS,
    ) -> None:
        self._hub = hub
        self._load = load
        self._interval = interval
        self._pending: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._again: set[uuid.UUID] = set()
        self._last: dict[uuid.UUID, float] = {}

    def on_notify(self, payload: str) -> None:
        if not self._hub.subscribers:
            return
        try:
            issue_id = uuid.UUID(payload)
        except ValueError:
            return
        if issue_id in self._pending:
            self._again.add(issue_id)
            return
        self._pending[issue_id] = asyncio.create_task(self._relay(issue_id))

    async def _relay(self, issue_id: uuid.UUID) -> None:
        try:
            while True:
                self._again.discard(issue_id)
                wait = self._last.get(issue_id, 0.0) + self._interval - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                self._again.discard(issue_id)  # this read covers what came during the wait
                try:
                    progress = await self._load(issue_id)
                except HeraldError as exc:  # a vanished issue, the database away
                    log.info("live progress not read", issue_id=str(issue_id), error=exc.message)
                else:
                    self._hub.publish(event("issue.progress", **progress.as_json()))
                self._last[issue_id] = time.monotonic()
                if issue_id not in self._again:
                    return
        finally:
            self._pending.pop(issue_id, None)
            if len(self._last) > 1000:
                cutoff = time.monotonic() - 60
                self._last = {k: v for k, v in self._last.items() if v > cutoff}

    async def stop(self) -> None:
        tasks = list(self._pending.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
