"""GET /admin/live: the WebSocket of live events, served by a real uvicorn in this process.

A client is the ``websockets`` package (the library uvicorn serves WebSockets with).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from herald.core.config import Settings
from herald.core.db import Database
from herald.core.live import Listener, LiveHub
from herald.issues.domain import IssueContent
from herald.issues.service import IssueService
from herald.web.cookies import SESSION_COOKIE
from tests.support.newsletters import CSRF, add_subscribers, create_admin, log_in
from tests.support.queue import wait_until
from tests.support.served import Served, serve


@pytest.fixture
async def served(settings: Settings, db: Database, database_url: str) -> AsyncIterator[Served]:
    from herald.composition.app import create_app
    from herald.composition.runtime import uvicorn_options

    app = create_app(settings, db=db, listen_dsn=database_url)
    async with serve(app, **uvicorn_options(settings)) as running:
        yield running


@contextlib.asynccontextmanager
async def signed_in(
    served: Served, db: Database, settings: Settings
) -> AsyncIterator[httpx.AsyncClient]:
    await create_admin(db, settings)
    async with httpx.AsyncClient(base_url=served.base_url, timeout=10) as client:
        await log_in(client)
        yield client


def socket(
    served: Served, client: httpx.AsyncClient | None, origin: str | None = None, **options: Any
) -> Any:
    headers = {}
    if client is not None:
        headers["Cookie"] = f"{SESSION_COOKIE}={client.cookies[SESSION_COOKIE]}"
    return connect(
        served.ws_url,
        origin=origin or served.base_url,  # type: ignore[arg-type]
        additional_headers=headers,
        proxy=None,
        open_timeout=10,
        **options,
    )


async def next_event(ws: ClientConnection, kind: str, timeout: float = 10.0) -> dict[str, Any]:
    """The next event of type ``kind`` (others skipped)."""
    async with asyncio.timeout(timeout):
        while True:
            data: dict[str, Any] = json.loads(await ws.recv())
            if data["type"] == kind:
                return data


async def close_code(ws: ClientConnection, timeout: float = 10.0) -> int | None:
    """Read until the server closes; its close code."""

    async def read_all() -> None:
        while True:
            await ws.recv()

    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(read_all(), timeout)
    assert closed.value.rcvd is not None, "closed without a close frame"
    return closed.value.rcvd.code


async def listening(served: Served) -> None:
    await served.state.part(Listener).wait_listening()


async def test_anonymous_clients_are_refused(served: Served) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with socket(served, None):
            pass
    assert refused.value.response.status_code == 403
    assert served.state.part(LiveHub).subscribers == 0


async def test_another_origin_is_refused_even_with_a_session(
    served: Served, db: Database, settings: Settings
) -> None:
    async with signed_in(served, db, settings) as client:
        for origin in ("http://evil.example", f"http://127.0.0.1:{served.port + 1}"):
            with pytest.raises(InvalidStatus) as refused:
                async with socket(served, client, origin=origin):
                    pass
            assert refused.value.response.status_code == 403
        async with socket(served, client) as ws:  # the same session from this site: fine
            hello = await next_event(ws, "hello")
            assert hello["username"] == "admin"


async def test_a_subscribe_reaches_a_signed_in_socket(
    served: Served, db: Database, settings: Settings
) -> None:
    async with signed_in(served, db, settings) as client, socket(served, client) as ws:
        await next_event(ws, "hello")
        await listening(served)
        async with httpx.AsyncClient(base_url=served.base_url) as visitor:
            answer = await visitor.post(
                "/subscriptions", data={"name": "Ada", "email": "ada@example.com"}
            )
            assert answer.status_code == 200
        created = await next_event(ws, "subscriber.created")
        assert set(created) == {"type", "subscriber_id"}  # no address, no name
        await add_subscribers(db, 3)
        service = IssueService(db, settings)
        issue_id = await service.create_draft(IssueContent.parse(title="T", text_content="x"), None)
        await service.publish(issue_id)
        status = await next_event(ws, "issue.status")
        assert status == {"type": "issue.status", "issue_id": str(issue_id), "status": "publishing"}
        progress = await next_event(ws, "issue.progress")
        assert progress["issue_id"] == str(issue_id)
        assert "queued" in progress


async def test_logout_closes_the_socket(served: Served, db: Database, settings: Settings) -> None:
    async with signed_in(served, db, settings) as client, socket(served, client) as ws:
        await next_event(ws, "hello")
        page = await client.get("/admin/password")
        token = CSRF.search(page.text)
        assert token
        logout = await client.post("/admin/logout", data={"csrf_token": token.group(1)})
        assert logout.headers["location"] == "/login"
        assert await close_code(ws) == 1008
    await wait_until(lambda: served.state.part(LiveHub).subscribers == 0)


async def test_draining_closes_the_socket_with_going_away(
    served: Served, db: Database, settings: Settings
) -> None:
    async with signed_in(served, db, settings) as client, socket(served, client) as ws:
        await next_event(ws, "hello")
        shutdown = asyncio.create_task(served.shut_down())  # draining, then uvicorn's exit
        assert await close_code(ws) == 1001
        await asyncio.wait_for(shutdown, 15)


async def test_a_slow_client_is_dropped_and_never_holds_up_the_others(
    served: Served, db: Database, settings: Settings
) -> None:
    hub = served.state.part(LiveHub)
    async with (
        signed_in(served, db, settings) as client,
        socket(served, client, max_queue=1) as slow,
        socket(served, client) as fast,
    ):
        await next_event(slow, "hello")
        await next_event(fast, "hello")
        seen: list[int] = []
        resyncs = 0

        async def read_fast() -> None:
            nonlocal resyncs
            while True:
                data = json.loads(await fast.recv())
                if data["type"] == "test":
                    seen.append(data["n"])
                elif data["type"] == "resync":
                    resyncs += 1

        reader = asyncio.create_task(read_fast())
        sent = 0
        async with asyncio.timeout(60):
            while hub.dropped == 0:  # the slow one reads nothing from here on
                # 60 KB each: socket buffers fill fast.
                hub.publish(json.dumps({"type": "test", "n": sent, "pad": "x" * 60_000}))
                sent += 1
                await asyncio.sleep(0.002)
        hub.publish(json.dumps({"type": "test", "n": sent}))
        await wait_until(lambda: bool(seen) and seen[-1] == sent, timeout=30)
        reader.cancel()
        assert hub.subscribers == 1  # the fast one, still served
        assert seen == sorted(set(seen))  # in order, never twice
        # Every message, unless (on a busy machine) it fell behind and was told to resync.
        assert len(seen) == sent + 1 or resyncs > 0
        assert await close_code(slow, timeout=30) == 1013


async def test_a_burst_resyncs_the_sockets_instead_of_dropping_them(
    served: Served, db: Database, settings: Settings
) -> None:
    """200 events committed at once reach the listener in one read, faster than any socket
    is written between two turns of the loop: each socket's queue becomes one resync."""
    hub = served.state.part(LiveHub)
    async with signed_in(served, db, settings) as client, contextlib.AsyncExitStack() as stack:
        sockets = [await stack.enter_async_context(socket(served, client)) for _ in range(5)]
        for ws in sockets:
            await next_event(ws, "hello")
        await listening(served)
        async with db.connection() as conn:
            await conn.execute(
                "SELECT pg_notify('herald_live', json_build_object('type', 'burst', 'n', n)::text)"
                " FROM generate_series(1, 200) AS n"
            )
            await conn.execute("""SELECT pg_notify('herald_live', '{"type": "after"}')""")
        for ws in sockets:
            await next_event(ws, "resync")
            await next_event(ws, "after")
        assert hub.dropped == 0
        assert hub.subscribers == 5
        assert hub.resynced >= 5
