"""GET /admin/live across real processes: two ``herald serve`` on two ports, one database.

An event caused by a request to one process reaches a socket of the other (LISTEN/NOTIFY,
not process memory), and SIGTERM closes an open socket with 1001 (going away) before the
process exits 0 — under ``serve --workers 2`` too, whose children drain on the signal.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from herald.core.config import Settings
from herald.core.db import Database
from herald.web.cookies import SESSION_COOKIE
from tests.e2e.test_newcomer import wait_ready
from tests.support.database import free_port
from tests.support.newsletters import create_admin, log_in
from tests.support.processes import herald_env, herald_process, wait_exit

DRAIN = 20.0  # uvicorn's graceful timeout: a socket holding the shutdown up would take this


def socket(base_url: str, session: str) -> Any:
    return connect(
        base_url.replace("http://", "ws://") + "/admin/live",
        origin=base_url,  # type: ignore[arg-type]
        additional_headers={"Cookie": f"{SESSION_COOKIE}={session}"},
        proxy=None,
        open_timeout=15,
    )


async def next_event(ws: ClientConnection, kind: str, timeout: float = 15.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            data: dict[str, Any] = json.loads(await ws.recv())
            if data["type"] == kind:
                return data


async def subscribe(base_url: str, email: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=15) as visitor:
        answer = await visitor.post("/subscriptions", data={"name": "Ada", "email": email})
        assert answer.status_code == 200, answer.text


async def test_events_cross_web_processes_and_sigterm_closes_with_going_away(
    database_url: str, db: Database, settings: Settings, tmp_path: Path
) -> None:
    await create_admin(db, settings)
    ports = (free_port(), free_port())
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    envs = [
        herald_env(
            HERALD_DATABASE_URL=database_url,
            HERALD_SECRET_KEY="live-test-secret-" + "s" * 40,
            HERALD_DATA_DIR=str(tmp_path / "data"),
            HERALD_PORT=str(port),
            HERALD_DELIVERY__DRAIN_SECONDS=str(DRAIN),
        )
        for port in ports
    ]
    logs = [tmp_path / "serve-a.log", tmp_path / "serve-b.log"]
    async with (
        herald_process("serve", env=envs[0], log_path=logs[0]) as serve_a,
        herald_process("serve", "--workers", "2", env=envs[1], log_path=logs[1]) as serve_b,
    ):
        await asyncio.gather(wait_ready(urls[0]), wait_ready(urls[1]))
        async with httpx.AsyncClient(base_url=urls[0], timeout=30) as admin:
            await log_in(admin)
            session = admin.cookies[SESSION_COOKIE]
        async with socket(urls[0], session) as on_a, socket(urls[1], session) as on_b:
            await next_event(on_a, "hello")
            await next_event(on_b, "hello")
            # Each process opens its LISTEN connection with its first socket: give it a
            # moment, then check both directions (retrying covers a listener still starting).
            for sender, receiver in ((urls[1], on_a), (urls[0], on_b)):
                for attempt in range(10):
                    await subscribe(sender, f"ada{attempt}.{sender[-5:]}@example.com")
                    try:
                        created = await next_event(receiver, "subscriber.created", timeout=2)
                    except TimeoutError:
                        continue
                    assert set(created) == {"type", "subscriber_id"}
                    break
                else:
                    pytest.fail(f"no event from {sender} reached the other process")

            serve_b.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(next_event(on_b, "never", timeout=DRAIN), DRAIN)
            assert closed.value.rcvd is not None, "closed without a close frame"
            assert closed.value.rcvd.code == 1001  # going away: reconnect elsewhere
            code = await wait_exit(serve_b, DRAIN)
            assert code == 0, logs[1].read_text()
            assert time.monotonic() - signalled < DRAIN / 2  # the socket held nothing up

            # The other process serves on; its socket still hears events.
            await subscribe(urls[0], "after@example.com")
            await next_event(on_a, "subscriber.created")

            serve_a.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as closed_a:
                await asyncio.wait_for(next_event(on_a, "never", timeout=DRAIN), DRAIN)
            assert closed_a.value.rcvd is not None
            assert closed_a.value.rcvd.code == 1001
            assert await wait_exit(serve_a, DRAIN) == 0, logs[0].read_text()
