"""Live events for signed-in browsers: one LISTEN connection per process, fanned out.

Services announce what happened with ``NOTIFY herald_live, '<json>'`` (:func:`event`
builds the payload: a ``type`` and a few ids and counts — never an email address, a
name or a secret — well under Postgres's 8000-byte limit), inside their transaction, so
an event is heard only once its change has committed. Every web process keeps **one**
connection that LISTENs (:class:`Listener`, for any number of channels) — never one per
browser — and a :class:`LiveHub` hands each message to every open socket's
:class:`Subscription`: a bounded queue. The hub never waits for a socket. A queue that
fills while its socket is still taking messages (a burst: many NOTIFYs read at once,
faster than any socket could be written between two turns of the event loop) is
replaced by one ``resync`` (the client re-reads what it shows); a queue that fills while
its socket has taken nothing for :data:`STALL_SECONDS` ends its subscription (the slow
client is dropped and reconnects). Draining ends them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from enum import StrEnum
from typing import Any

import asyncpg

from herald.core import sql
from herald.core.config import DatabaseSettings
from herald.core.db import Connection, connect
from herald.core.errors import HeraldError
from herald.core.telemetry import get_logger

log = get_logger("herald.live")
Q = sql.load("herald.core")

CHANNEL = "herald_live"
# Postgres refuses payloads of 8000 bytes or more; Herald's events are a few ids.
MAX_PAYLOAD_BYTES = 1000

# A stopping process waits at most this long for its sockets' 1001 (LiveHub.wait_closed)
# before its web server's own shutdown, which closes the sockets still open with 1012.
CLOSE_ON_DRAIN_SECONDS = 5.0

# A full queue whose socket has taken no message for this long: the client is too slow.
STALL_SECONDS = 2.0

ConnectionSource = Callable[[], AbstractAsyncContextManager[Connection]]
Handler = Callable[[str], None]


def event(kind: str, **fields: object) -> str:
    """The JSON text of one event (``{"type": kind, ...fields}``), checked for size."""
    text = json.dumps({"type": kind, **fields}, separators=(",", ":"), default=str)
    if len(text.encode()) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"live event {kind!r} is {len(text.encode())} bytes; keep it small")
    return text


RESYNC = event("resync")  # "re-read what you show: events were missed"


async def notify(conn: Connection, payload: str) -> None:
    """``NOTIFY herald_live`` (delivered when the caller's transaction commits)."""
    await conn.execute(Q["notify_live"], payload)


class _ConnectionLost(Exception):
    pass


FAILURES: tuple[type[BaseException], ...] = (
    HeraldError,  # Unavailable from the pool or connect()
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
    TimeoutError,
    _ConnectionLost,
)


def dedicated_connection(dsn: str, settings: DatabaseSettings, name: str) -> ConnectionSource:
    """A connection of its own, outside the pool; ``dsn`` is Postgres itself, never a
    transaction pooler, through which LISTEN hears nothing."""

    @asynccontextmanager
    async def source() -> AsyncIterator[Connection]:
        conn = await connect(dsn, settings, name)
        try:
            yield conn
        finally:
            with contextlib.suppress(*FAILURES):
                await asyncio.wait_for(conn.close(), timeout=5)

    return source


class Listener:
    """One connection LISTENing on several channels; handlers run on the event loop.

    Re-opens a lost connection with backoff (checking it with a ping, since a silent
    network failure raises nothing) and calls ``on_connect`` handlers after every
    (re)connect: whatever was missed while it was down is the consumer's to re-read.
    """

    def __init__(
        self,
        source: ConnectionSource,
        *,
        retry_seconds: float = 0.5,
        max_retry_seconds: float = 15.0,
        ping_seconds: float = 30.0,
    ) -> None:
        self._source = source
        self._retry = retry_seconds
        self._max_retry = max_retry_seconds
        self._ping = ping_seconds
        self._handlers: dict[str, list[Handler]] = {}
        self._on_connect: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self._closed = False
        self._stop = asyncio.Event()
        self.connects = 0
        self.notifications = 0

    def on(self, channel: str, handler: Handler) -> None:
        """Call ``handler(payload)`` for each notification on ``channel`` (before start)."""
        self._handlers.setdefault(channel, []).append(handler)

    def on_connect(self, handler: Callable[[], None]) -> None:
        self._on_connect.append(handler)

    @property
    def listening(self) -> bool:
        return self._listening.is_set()

    def start(self) -> None:
        """Start listening (idempotent)."""
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self._run(), name="live-listener")

    async def wait_listening(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self._listening.wait(), timeout=timeout)

    async def stop(self) -> None:
        self._closed = True
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _dispatch(self, _conn: Any, _pid: int, channel: str, payload: object) -> None:
        self.notifications += 1
        for handler in self._handlers.get(channel, ()):
            try:
                handler(str(payload))
            except Exception:
                log.exception("live event handler failed", channel=channel)

    def _connected(self) -> None:
        for handler in self._on_connect:
            try:
                handler()
            except Exception:
                log.exception("live reconnect handler failed")

    async def _run(self) -> None:
        delay = self._retry
        while not self._closed:
            try:
                await self._listen()
                delay = self._retry
            except FAILURES as exc:
                log.warning("live listener lost; reconnecting", error=str(exc), retry=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=delay)
            delay = min(delay * 2, self._max_retry)

    async def _listen(self) -> None:
        async with self._source() as conn:
            lost = asyncio.Event()

            def on_lost(_conn: Any) -> None:
                lost.set()

            conn.add_termination_listener(on_lost)
            try:
                for channel in self._handlers:
                    await conn.add_listener(channel, self._dispatch)
                self.connects += 1
                self._listening.set()
                self._connected()
                while not self._closed:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), timeout=self._ping)
                    if lost.is_set():
                        raise _ConnectionLost("the listen connection was closed")
                    await asyncio.wait_for(conn.fetchval(Q["ping"]), timeout=5)
            finally:
                self._listening.clear()
                conn.remove_termination_listener(on_lost)  # a pooled connection lives on
                for channel in self._handlers:
                    with contextlib.suppress(*FAILURES):  # no-op on a closed connection
                        await asyncio.wait_for(conn.remove_listener(channel, self._dispatch), 5)


class End(StrEnum):
    """Why a subscription ended."""

    SLOW = "slow"  # its queue overflowed: the client does not keep up
    DRAINING = "draining"  # the process is stopping
    SESSION = "session"  # logged out or expired
    GONE = "gone"  # the client went away


class Subscription:
    """One socket's bounded queue of messages, and the reason it ended (if it did)."""

    def __init__(
        self,
        size: int,
        on_slow: Callable[[], None] | None = None,
        stall_seconds: float = STALL_SECONDS,
    ) -> None:
        self.queue: asyncio.Queue[str] = asyncio.Queue(size)
        self.reason: End | None = None
        self._ended = asyncio.Event()
        self._on_slow = on_slow
        self._stall = stall_seconds
        self._progress = time.monotonic()  # the socket last took a message (or had none)

    def offer(self, message: str) -> bool:
        """Queue ``message`` without waiting. A full queue ends the subscription when its
        socket took nothing for ``stall_seconds``; otherwise (a burst) what is queued is
        replaced by one ``resync``: then True."""
        if self.reason is not None:
            return False
        if self.queue.empty():
            self._progress = time.monotonic()  # nothing waiting: no stall so far
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            if time.monotonic() - self._progress >= self._stall:
                self.end(End.SLOW)
                return False
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(RESYNC)
            return True
        return False

    async def get(self) -> str:
        """The next message, once there is one (the socket is making progress)."""
        message = await self.queue.get()
        self._progress = time.monotonic()
        return message

    def end(self, reason: End) -> None:
        if self.reason is None:
            self.reason = reason
            self._ended.set()
            if reason is End.SLOW and self._on_slow is not None:
                self._on_slow()

    async def ended(self) -> End:
        await self._ended.wait()
        assert self.reason is not None
        return self.reason


class LiveHub:
    """The process's open sockets: ``publish`` offers a message to each, never waiting."""

    def __init__(
        self, queue_size: int = 64, on_first_subscriber: Callable[[], None] | None = None
    ) -> None:
        self._queue_size = queue_size
        self._on_first = on_first_subscriber  # e.g. start the listener: lazily, like SSE's
        self._subscriptions: set[Subscription] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._open = 0  # subscribe() blocks not left yet: their sockets are still closing
        self._all_closed: asyncio.Event | None = None
        self.draining = False
        self.dropped = 0  # slow clients dropped, for tests and the curious operator
        self.resynced = 0  # queues replaced by a resync after a burst

    @property
    def subscribers(self) -> int:
        """The subscriptions that receive messages (a dropped one no longer counts)."""
        return len(self._subscriptions)

    @property
    def open(self) -> int:
        """The sockets whose ``subscribe`` block has not ended (dropped ones included,
        until their close is done)."""
        return self._open

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[Subscription]:
        self._loop = asyncio.get_running_loop()
        if self._on_first is not None:
            self._on_first()
        subscription = Subscription(self._queue_size, on_slow=self._dropped_one)
        if self.draining:
            subscription.end(End.DRAINING)
        self._subscriptions.add(subscription)
        self._open += 1
        if self._all_closed is None:
            self._all_closed = asyncio.Event()
        self._all_closed.clear()
        try:
            yield subscription
        finally:
            self._subscriptions.discard(subscription)
            self._open -= 1
            if self._open == 0:
                self._all_closed.set()

    async def wait_closed(self, timeout: float) -> bool:
        """Wait, at most ``timeout`` seconds, until every socket has left its
        ``subscribe`` block (after draining: its 1001 close frame is written); True if
        they all did. The process's signal handling waits on this before letting
        uvicorn's shutdown begin, which would close the sockets still open with 1012."""
        if self._open == 0 or self._all_closed is None:
            return True
        try:
            await asyncio.wait_for(self._all_closed.wait(), timeout)
        except TimeoutError:
            log.warning("live sockets still closing", open=self._open, waited=timeout)
            return False
        return True

    def publish(self, message: str) -> None:
        resynced = 0
        for subscription in list(self._subscriptions):
            resynced += subscription.offer(message)
            if subscription.reason is End.SLOW:
                self._subscriptions.discard(subscription)
        if resynced:
            self.resynced += resynced
            log.info("live burst: sockets told to resync", sockets=resynced)

    def _dropped_one(self) -> None:
        """A subscription ended as SLOW: its queue overflowed here, or its socket took
        no write for a while (admin/live.py's send timeout)."""
        self.dropped += 1
        log.info("live client dropped: it does not keep up", dropped=self.dropped)

    def drain(self) -> None:
        """End every subscription (and refuse new ones); safe from a signal handler or
        another thread: the sockets are told on their event loop, at once."""
        self.draining = True
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: nothing is open
            loop.call_soon_threadsafe(self._end_all)

    def _end_all(self) -> None:
        for subscription in list(self._subscriptions):
            subscription.end(End.DRAINING)
