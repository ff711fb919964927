"""Graceful shutdown of real ``herald serve`` processes (one, and several under uvicorn's
supervisor): on SIGTERM readiness turns 503 while requests are still served for
``HERALD_SHUTDOWN_DELAY_SECONDS``, open progress streams end at once instead of holding the
drain up (asking the browser to come back elsewhere), and the process exits 0 well inside
uvicorn's graceful timeout (``HERALD_DELIVERY__DRAIN_SECONDS``)."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
import pytest

from herald.core.config import Settings
from herald.core.db import Database
from herald.issues.domain import IssueContent
from herald.issues.service import IssueService
from tests.e2e.test_newcomer import wait_ready
from tests.integration.test_progress_events import Events
from tests.support.database import free_port
from tests.support.newsletters import add_subscribers, create_admin, log_in, publish_now
from tests.support.processes import herald_env, herald_process, wait_exit

DELAY = 6.0  # long enough for the checks below on a loaded machine
DRAIN = 20.0  # uvicorn's graceful timeout: a stream holding the shutdown up would take this long


async def published_issue(db: Database, settings: Settings) -> str:
    await add_subscribers(db, 3)
    service = IssueService(db, settings)
    issue_id = await service.create_draft(
        IssueContent.parse(title="Drain", text_content="Hi"), None
    )
    await publish_now(service, issue_id)  # no worker runs: it stays "publishing"
    return str(issue_id)


async def status(base_url: str, path: str) -> int | None:
    """The status of ``path`` on a new connection; None once nothing accepts connections."""
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=5) as fresh:
            return (await fresh.get(path)).status_code
    except httpx.TransportError:
        return None


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_sigterm_drains_readiness_first_and_ends_progress_streams(
    database_url: str, db: Database, settings: Settings, tmp_path: Path, workers: str
) -> None:
    await create_admin(db, settings)
    issue_id = await published_issue(db, settings)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = herald_env(
        HERALD_DATABASE_URL=database_url,
        HERALD_SECRET_KEY="shutdown-test-secret-" + "s" * 40,
        HERALD_DATA_DIR=str(tmp_path / "data"),
        HERALD_PORT=str(port),
        HERALD_SHUTDOWN_DELAY_SECONDS=str(DELAY),
        HERALD_DELIVERY__DRAIN_SECONDS=str(DRAIN),
    )
    log_path = tmp_path / "serve.log"
    async with herald_process("serve", "--workers", workers, env=env, log_path=log_path) as web:
        await wait_ready(base_url)
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as admin:
            await log_in(admin)
            async with admin.stream("GET", f"/admin/issues/{issue_id}/events") as response:
                events = Events(response)
                name, progress = await events.next(timeout=15)
                assert (name, progress["status"]) == ("progress", "publishing")

                web.send_signal(signal.SIGTERM)
                signalled = time.monotonic()
                # The open stream ends by itself (checked every second), not at the drain.
                await events.rest(timeout=10)
                assert time.monotonic() - signalled < DRAIN / 2
                # Still serving, but no longer ready: a load balancer takes it out now.
                assert await status(base_url, "/health/ready") == 503
                assert await status(base_url, "/health/live") == 200
                assert await status(base_url, "/login") == 200
                # A browser reconnecting to a draining process is told to retry later
                # (an error status would make EventSource give up for good).
                again = await admin.get(f"/admin/issues/{issue_id}/events")
                assert again.status_code == 200
                assert again.text.strip() == "retry: 3000"
                assert time.monotonic() - signalled < DELAY, "too slow to check within the delay"

        code = await wait_exit(web, timeout=DRAIN)
        elapsed = time.monotonic() - signalled
    log = await asyncio.to_thread(log_path.read_text)
    assert code == 0, log
    assert DELAY <= elapsed < DELAY + DRAIN / 2, (elapsed, log)
    assert await status(base_url, "/health/live") is None
