"""Live progress over server-sent events, fed by Postgres LISTEN/NOTIFY.

httpx's ASGI transport buffers whole responses, so these tests serve the app with
a real uvicorn on a loopback port, in this process and event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from herald.core.config import Settings
from herald.core.db import Database
from herald.issues.domain import IssueContent
from herald.issues.progress import HEARTBEAT, ProgressHub, progress_stream
from herald.issues.service import IssueService, Progress
from tests.support.newsletters import (
    CSRF,
    add_subscribers,
    create_admin,
    drain,
    issue_worker,
    log_in,
    publish_now,
)
from tests.support.queue import RecordingProvider, wait_until
from tests.support.served import Served, serve


def hub_of(served: Served) -> ProgressHub:
    return served.state.part(ProgressHub)


@pytest.fixture
async def served(settings: Settings, db: Database) -> AsyncIterator[Served]:
    """The app as ``herald up`` builds it: the hub holds one connection of the pool."""
    from herald.composition.app import create_app

    async with serve(create_app(settings, db=db), ws="none") as running:
        yield running


@pytest.fixture
async def served_dedicated(
    settings: Settings, db: Database, database_url: str
) -> AsyncIterator[Served]:
    """The app as ``serve --workers`` builds it: the hub has a connection of its own."""
    from herald.composition.app import create_app

    async with serve(create_app(settings, db=db, listen_dsn=database_url), ws="none") as running:
        yield running


@contextlib.asynccontextmanager
async def admin(
    base_url: str, db: Database, settings: Settings
) -> AsyncIterator[httpx.AsyncClient]:
    """A logged-in admin's client over real HTTP."""
    await create_admin(db, settings)
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        await log_in(client)
        yield client


async def published_issue(db: Database, settings: Settings) -> uuid.UUID:
    """An issue published to the confirmed subscribers there are."""
    service = IssueService(db, settings)
    content = IssueContent.parse(title="Live", text_content="Hello")
    issue_id = await service.create_draft(content, None)
    await publish_now(service, issue_id)
    return issue_id


END = object()


class Events:
    """Reads one SSE response in a task of its own, so waiting with a timeout is harmless
    (cancelling an async generator mid-``anext`` would close it)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self.failed: httpx.HTTPError | None = None  # the read ended in an error, not an end
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        name, data = "message", []
        try:
            async for line in self.response.aiter_lines():
                if line.startswith(":"):
                    self._queue.put_nowait(line)
                elif line.startswith("event:"):
                    name = line.partition(":")[2].strip()
                elif line.startswith("data:"):
                    data.append(line.partition(":")[2].strip())
                elif line == "" and data:
                    self._queue.put_nowait((name, json.loads("\n".join(data))))
                    name, data = "message", []
        except httpx.HTTPError as exc:
            self.failed = exc
        finally:
            self._queue.put_nowait(END)

    async def next(self, timeout: float = 5.0) -> tuple[str, dict[str, Any]]:
        """The next event (comments skipped); StopAsyncIteration when the stream ended."""
        while True:
            item = await asyncio.wait_for(self._queue.get(), timeout=timeout)
            if item is END:
                self._queue.put_nowait(END)
                raise StopAsyncIteration
            if not isinstance(item, str):
                return item  # type: ignore[return-value]

    async def rest(self, timeout: float = 5.0) -> list[object]:
        """Everything until the server ends the stream."""
        items = []
        while (item := await asyncio.wait_for(self._queue.get(), timeout=timeout)) is not END:
            items.append(item)
        return items

    async def skip(self, quiet: float = 0.3) -> None:
        """Drop events until none has come for ``quiet`` seconds."""
        with contextlib.suppress(TimeoutError):
            while True:
                await self.next(timeout=quiet)

    async def aclose(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


@contextlib.asynccontextmanager
async def open_events(client: httpx.AsyncClient, issue_id: uuid.UUID) -> AsyncIterator[Events]:
    async with client.stream("GET", f"/admin/issues/{issue_id}/events") as response:
        events = Events(response)
        try:
            yield events
        finally:
            await events.aclose()


async def notify(db: Database, issue_id: uuid.UUID) -> None:
    async with db.connection() as conn:
        await conn.execute("SELECT pg_notify('herald_progress', $1)", str(issue_id))


async def mark_sent(db: Database, issue_id: uuid.UUID, count: int) -> None:
    async with db.connection() as conn:
        await conn.execute(
            "UPDATE deliveries SET status = 'sent', sent_at = now() WHERE id IN"
            " (SELECT id FROM deliveries WHERE issue_id = $1 AND status = 'queued'"
            "  ORDER BY id LIMIT $2)",
            issue_id,
            count,
        )


# -- the stream ---------------------------------------------------------------------------


async def test_the_stream_follows_notifications_and_worker_batches_until_sent(
    served: Served, db: Database, settings: Settings
) -> None:
    await add_subscribers(db, 4)
    issue_id = await published_issue(db, settings)
    async with (
        admin(served.base_url, db, settings) as client,
        open_events(client, issue_id) as events,
    ):
        response = events.response
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-store"
        name, first = await events.next()
        assert name == "progress"
        assert first == {
            "issue_id": str(issue_id),
            "status": "publishing",
            "recipients": 4,
            "percent": 0.0,
            "fanning_out": False,
            "fanout_error": None,
            "rate_per_min": None,  # nothing finished yet
            "eta_seconds": None,
            "queued": 4,
            "sending": 0,
            "sent": 0,
            "failed": 0,
            "suppressed": 0,
        }
        await hub_of(served).wait_listening()

        # A NOTIFY from any connection (here: not a worker) wakes the stream.
        await mark_sent(db, issue_id, 2)
        await notify(db, issue_id)
        progress = first
        while progress["sent"] != 2:  # the hub's connect wake-up may add an unchanged event
            _, progress = await events.next()
        assert (progress["queued"], progress["percent"]) == (2, 50.0)

        # A real worker: its batches notify, the issue completes, the last event says so.
        await drain(issue_worker(db, settings, RecordingProvider(), batch_size=1))
        while progress["status"] != "sent":
            _, progress = await events.next()
        assert (progress["sent"], progress["percent"]) == (4, 100.0)
        assert await events.rest() == []  # and then the server ended the stream
    await wait_until(lambda: hub_of(served).watchers == 0)


async def test_the_stream_ends_when_its_session_is_logged_out(
    served: Served, db: Database, settings: Settings
) -> None:
    await add_subscribers(db, 2)
    issue_id = await published_issue(db, settings)
    async with (
        admin(served.base_url, db, settings) as client,
        open_events(client, issue_id) as events,
    ):
        name, _ = await events.next()
        assert name == "progress"
        page = await client.get("/admin/password")
        token = CSRF.search(page.text)
        assert token
        logout = await client.post("/admin/logout", data={"csrf_token": token.group(1)})
        assert logout.headers["location"] == "/login"
        # The issue is still publishing: only the logout can end this stream, and the
        # server ends it (not the client's read timeout).
        rest = await events.rest(timeout=15)
        assert events.failed is None, f"the stream did not end: {events.failed!r}"
        assert all(name == "progress" for name, _ in rest)  # type: ignore[misc]
    await wait_until(lambda: hub_of(served).watchers == 0)


async def test_a_sent_issue_gets_one_event_and_the_end(
    served: Served, db: Database, settings: Settings
) -> None:
    issue_id = await published_issue(db, settings)  # nobody to send to: sent at once
    async with admin(served.base_url, db, settings) as client:
        response = await client.get(f"/admin/issues/{issue_id}/events")
    assert response.status_code == 200
    assert response.text.startswith("retry: 3000\nevent: progress\ndata: {")
    assert response.text.count("event: progress") == 1
    assert '"status":"sent"' in response.text
    assert '"percent":100.0' in response.text


async def test_one_listen_connection_serves_every_stream(
    served_dedicated: Served, db: Database, settings: Settings
) -> None:
    await add_subscribers(db, 2)
    watched = await published_issue(db, settings)
    other = await published_issue(db, settings)
    quiet = await IssueService(db, settings).create_draft(
        IssueContent.parse(title="Quiet", text_content="x"), None
    )
    hub = hub_of(served_dedicated)
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(admin(served_dedicated.base_url, db, settings))
        streams = []
        for issue_id in (watched, watched, watched, quiet):
            events = await stack.enter_async_context(open_events(client, issue_id))
            await events.next()
            streams.append(events)
        await hub.wait_listening()
        assert hub.watchers == 4
        assert hub.connects == 1
        async with db.connection() as conn:
            listeners = await conn.fetch(
                "SELECT pid, query FROM pg_stat_activity"
                " WHERE datname = current_database() AND application_name = 'herald-progress'"
            )
        assert len(listeners) == 1, listeners
        assert "LISTEN" in listeners[0]["query"]

        for events in streams:  # past the wake-up that follows the hub's connect
            await events.skip()
        await mark_sent(db, watched, 1)
        await notify(db, watched)
        await notify(db, other)  # nobody watches it: no event anywhere
        for events in streams[:3]:
            _, progress = await events.next()
            assert (progress["issue_id"], progress["sent"]) == (str(watched), 1)
        with pytest.raises(TimeoutError):
            await streams[3].next(timeout=1.0)
    await wait_until(lambda: hub.watchers == 0)
    assert hub.connects == 1


async def test_bursts_are_coalesced(served: Served, db: Database, settings: Settings) -> None:
    await add_subscribers(db, 1)
    issue_id = await published_issue(db, settings)
    async with (
        admin(served.base_url, db, settings) as client,
        open_events(client, issue_id) as events,
    ):
        await events.next()
        await hub_of(served).wait_listening()
        await events.skip(0.5)  # the connect wake-up
        before = hub_of(served).notifications
        started = time.monotonic()
        for _ in range(40):
            await notify(db, issue_id)
        await wait_until(lambda: hub_of(served).notifications - before >= 40)
        received = 0
        with contextlib.suppress(TimeoutError):
            while True:
                await events.next(timeout=0.6)
                received += 1
        elapsed = time.monotonic() - started - 0.6
    assert 1 <= received <= 1 + elapsed / 0.25, (received, elapsed)
    assert received < 10


async def test_the_hub_reconnects_after_losing_its_connection(
    served_dedicated: Served, db: Database, settings: Settings
) -> None:
    await add_subscribers(db, 3)
    issue_id = await published_issue(db, settings)
    hub = hub_of(served_dedicated)
    async with (
        admin(served_dedicated.base_url, db, settings) as client,
        open_events(client, issue_id) as events,
    ):
        await events.next()
        await hub.wait_listening()
        async with db.connection() as conn:
            killed = await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND application_name = 'herald-progress'"
            )
        assert killed == 1
        await wait_until(lambda: hub.connects == 2, timeout=30)
        await hub.wait_listening()
        await events.skip()
        await mark_sent(db, issue_id, 3)
        await notify(db, issue_id)
        _, progress = await events.next()
        assert progress["sent"] == 3


# -- ending streams ------------------------------------------------------------------------


async def test_a_closed_browser_ends_its_stream(
    served: Served, db: Database, settings: Settings
) -> None:
    await add_subscribers(db, 1)
    issue_id = await published_issue(db, settings)
    async with admin(served.base_url, db, settings) as client:
        async with open_events(client, issue_id) as events:
            await events.next()
            assert hub_of(served).watchers == 1
        await wait_until(lambda: hub_of(served).watchers == 0)


async def test_shutting_down_ends_open_streams_promptly(
    served: Served, db: Database, settings: Settings
) -> None:
    await add_subscribers(db, 1)
    issue_id = await published_issue(db, settings)
    async with (
        admin(served.base_url, db, settings) as client,
        open_events(client, issue_id) as events,
    ):
        await events.next()
        await hub_of(served).wait_listening()
        await events.skip()  # the connect wake-up
        started = time.monotonic()
        shutdown = asyncio.create_task(served.shut_down())
        rest = await events.rest()  # returns when the server ends the stream
        await asyncio.wait_for(shutdown, timeout=5)
    # Far below uvicorn's graceful timeout (10 s): the stream did not hold shutdown up.
    assert time.monotonic() - started < 3
    assert hub_of(served).closed
    assert all(isinstance(item, str) for item in rest)  # no further progress events


async def test_the_stream_sends_heartbeats_while_nothing_happens(
    db: Database, settings: Settings
) -> None:
    await add_subscribers(db, 1)
    issue_id = await published_issue(db, settings)
    service = IssueService(db, settings)
    hub = ProgressHub(db.connection)
    stopping = False

    async def should_stop() -> bool:
        return stopping

    async def load() -> Progress:
        return await service.progress(issue_id)

    chunks: list[str] = []
    stream = progress_stream(
        issue_id, hub=hub, load=load, should_stop=should_stop, heartbeat=0.2, tick=0.05
    )
    try:
        async with asyncio.timeout(5):
            async for chunk in stream:
                chunks.append(chunk)
                if chunks.count(HEARTBEAT) == 2:
                    stopping = True
    finally:
        await hub.stop()
    assert chunks[0].startswith("retry: 3000\nevent: progress\n")
    assert chunks.count(HEARTBEAT) == 2
