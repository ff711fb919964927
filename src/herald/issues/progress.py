"""Live issue progress: one LISTEN connection per web process, fanned out to SSE streams.

Workers ``NOTIFY herald_progress, '<issue id>'`` after every batch. Each web
process keeps **one** connection listening on that channel — never one per
browser — and wakes the streams watching that issue; any web process can
therefore serve any browser. The hub starts with the first watcher, re-opens a
lost connection with backoff (checking it with a ping, since a silent network
failure raises nothing), and wakes every watcher after a (re)connect so that
nothing missed while it was down goes unseen. Stopping the hub ends every stream.

:func:`progress_stream` is one browser's ``text/event-stream``: the current
progress at once, again after notifications for its issue (bursts coalesced to
at most one event per ``min_interval``), a comment as heartbeat, and a last event
when the issue is ``sent``. Each event carries the rate (finished deliveries a minute)
over the stream's last :data:`RATE_WINDOW_SECONDS` and the ETA at that rate; until the
stream has watched for :data:`RATE_MIN_SECONDS`, the average since publishing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import replace
from typing import Any

import asyncpg

from herald.core.config import DatabaseSettings
from herald.core.db import QUERIES, Connection, connect
from herald.core.errors import HeraldError
from herald.core.telemetry import get_logger
from herald.issues.domain import IssueStatus
from herald.issues.service import Progress

log = get_logger("herald.progress")

CHANNEL = "herald_progress"

ConnectionSource = Callable[[], AbstractAsyncContextManager[Connection]]


class _ConnectionLost(Exception):
    pass


_FAILURES: tuple[type[BaseException], ...] = (
    HeraldError,  # Unavailable from the pool or connect()
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
    TimeoutError,
    _ConnectionLost,
)


def dedicated_connection(dsn: str, settings: DatabaseSettings) -> ConnectionSource:
    """A connection of its own, outside the pool (the preferred source); ``dsn`` is
    Postgres itself, never a transaction pooler, through which LISTEN hears nothing."""

    @asynccontextmanager
    async def source() -> AsyncIterator[Connection]:
        conn = await connect(dsn, settings, "herald-progress")
        try:
            yield conn
        finally:
            with contextlib.suppress(*_FAILURES):
                await asyncio.wait_for(conn.close(), timeout=5)

    return source


class Watch:
    """One stream's interest in one issue: woken by the hub, awaited by the stream."""

    def __init__(self, issue_id: uuid.UUID) -> None:
        self.issue_id = issue_id
        self._event = asyncio.Event()

    def wake(self) -> None:
        self._event.set()

    @property
    def woken(self) -> bool:
        return self._event.is_set()

    def clear(self) -> None:
        self._event.clear()

    async def wait(self, timeout: float) -> bool:
        """True when woken within ``timeout`` seconds (the flag stays set until clear())."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout=timeout)
        return self._event.is_set()


class ProgressHub:
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
        self._watches: dict[uuid.UUID, set[Watch]] = {}
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self._closed = False
        self._stop = asyncio.Event()
        # Counters, for tests and the curious operator.
        self.connects = 0
        self.notifications = 0

    @property
    def listening(self) -> bool:
        return self._listening.is_set()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def watchers(self) -> int:
        return sum(len(w) for w in self._watches.values())

    def start(self) -> None:
        """Start listening (idempotent; ``watch`` calls it, so starting is lazy)."""
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self._run(), name="progress-hub")

    async def wait_listening(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self._listening.wait(), timeout=timeout)

    async def stop(self) -> None:
        """Close the connection and end every stream (they see ``closed`` when woken)."""
        self._closed = True
        self._stop.set()
        self._wake_all()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @contextlib.contextmanager
    def watch(self, issue_id: uuid.UUID) -> Iterator[Watch]:
        watch = Watch(issue_id)
        self._watches.setdefault(issue_id, set()).add(watch)
        self.start()
        try:
            yield watch
        finally:
            watchers = self._watches.get(issue_id)
            if watchers is not None:
                watchers.discard(watch)
                if not watchers:
                    del self._watches[issue_id]

    def _wake_all(self) -> None:
        for watchers in self._watches.values():
            for watch in watchers:
                watch.wake()

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        self.notifications += 1
        try:
            issue_id = uuid.UUID(str(payload))
        except ValueError:
            return
        for watch in self._watches.get(issue_id, ()):
            watch.wake()

    async def _run(self) -> None:
        delay = self._retry
        while not self._closed:
            try:
                await self._listen()
            except _FAILURES as exc:
                log.warning("progress listener lost; reconnecting", error=str(exc), retry=delay)
            self._wake_all()  # they re-read: notifications may have been missed
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
                await conn.add_listener(CHANNEL, self._on_notify)
                self.connects += 1
                self._listening.set()
                log.debug("progress listener connected", connects=self.connects)
                self._wake_all()  # close the gap between a stream's first read and LISTEN
                while not self._closed:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), timeout=self._ping)
                    if lost.is_set():
                        raise _ConnectionLost("the listen connection was closed")
                    await asyncio.wait_for(conn.fetchval(QUERIES["ping"]), timeout=5)
            finally:
                self._listening.clear()
                conn.remove_termination_listener(on_lost)  # a pooled connection lives on
                with contextlib.suppress(*_FAILURES):  # no-op on a closed connection
                    await asyncio.wait_for(conn.remove_listener(CHANNEL, self._on_notify), 5)


def sse(event: str, data: dict[str, object]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


HEARTBEAT = ": heartbeat\n\n"
RETRY_MS = 3000
RATE_WINDOW_SECONDS = 60.0
RATE_MIN_SECONDS = 5.0


class RateWindow:
    """Finished deliveries a minute over the last ``window`` seconds of samples."""

    def __init__(self, window: float = RATE_WINDOW_SECONDS, least: float = RATE_MIN_SECONDS):
        self._window = window
        self._least = least
        self._samples: deque[tuple[float, int]] = deque()

    def rate(self, progress: Progress, now: float) -> Progress:
        """``progress`` with the window's rate, when the window is long enough to tell."""
        if progress.status is not IssueStatus.PUBLISHING:
            self._samples.clear()
            return progress
        self._samples.append((now, progress.done))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self._window:
            self._samples.popleft()
        started, done_then = self._samples[0]
        if now - started < self._least:
            return progress
        per_minute = max(0, progress.done - done_then) * 60 / (now - started)
        return replace(progress, rate_per_min=per_minute)


async def _load_or_none(load: Callable[[], Awaitable[Progress]]) -> Progress | None:
    """The stream's read; on failure the stream ends and the browser's EventSource
    reconnects after ``RETRY_MS`` (a failed read is never an unhandled error)."""
    try:
        return await load()
    except HeraldError as exc:
        log.warning("progress stream ended", error=exc.message)
    except Exception:
        log.exception("progress stream ended: reading the progress failed")
    return None


async def progress_stream(
    issue_id: uuid.UUID,
    *,
    hub: ProgressHub,
    load: Callable[[], Awaitable[Progress]],
    should_stop: Callable[[], Awaitable[bool]],
    heartbeat: float = 15.0,
    min_interval: float = 0.25,
    tick: float = 1.0,
) -> AsyncIterator[str]:
    """Server-sent events for one issue, until it is sent, the client goes or the app drains.

    ``should_stop`` is asked at least every ``tick`` seconds (client disconnected?
    process draining?), so an open stream never holds up a graceful shutdown.
    """
    window = RateWindow()
    with hub.watch(issue_id) as watch:  # watch first: a notification during the read counts
        progress = await _load_or_none(load)
        if progress is None:
            return
        progress = window.rate(progress, time.monotonic())
        yield f"retry: {RETRY_MS}\n" + sse("progress", progress.as_json())
        last_event = last_write = time.monotonic()
        while progress.status is not IssueStatus.SENT:
            woken = await watch.wait(tick)
            if hub.closed or await should_stop():
                return
            now = time.monotonic()
            if woken or (not hub.listening and now - last_write >= heartbeat):
                await asyncio.sleep(max(0.0, last_event + min_interval - now))
                watch.clear()
                fresh = await _load_or_none(load)
                if fresh is None:
                    return
                fresh = window.rate(fresh, time.monotonic())
                if woken or fresh != progress:
                    progress = fresh
                    yield sse("progress", progress.as_json())
                    last_event = last_write = time.monotonic()
                    continue
            if now - last_write >= heartbeat:
                yield HEARTBEAT
                last_write = now
