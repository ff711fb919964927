"""Issue lifecycle through the service: drafts, scheduling, test sends, retries, progress."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from herald.core.config import Settings
from herald.core.db import Database
from herald.core.errors import Conflict, ValidationError
from herald.issues.domain import IssueContent, IssueStatus
from herald.issues.proofs import Proofs
from herald.issues.service import IssueService
from tests.support.newsletters import add_subscribers, drain, fan_out, issue_worker, publish_now
from tests.support.queue import RecordingProvider

CONTENT = IssueContent.parse(title="Hello", markdown="Dear {{ subscriber.name }}, *news*.")


@pytest.fixture
def service(db: Database, settings: Settings) -> IssueService:
    return IssueService(db, settings)


async def statuses(db: Database) -> dict[str, int]:
    async with db.connection() as conn:
        rows = await conn.fetch(
            "SELECT status, count(*) AS n FROM deliveries WHERE issue_id IS NOT NULL GROUP BY 1"
        )
    return {r["status"]: r["n"] for r in rows}


async def test_a_draft_is_editable_until_published(service: IssueService, db: Database) -> None:
    issue_id = await service.create_draft(CONTENT, None)
    await service.update(issue_id, IssueContent.parse(title="Hello again", text_content="x"))
    assert (await service.get(issue_id)).title == "Hello again"
    await add_subscribers(db, 2)
    assert await publish_now(service, issue_id) == 2
    with pytest.raises(Conflict):
        await service.update(issue_id, CONTENT)
    with pytest.raises(Conflict):
        await service.publish(issue_id)
    assert (await statuses(db)) == {"queued": 2}


async def test_publishing_to_nobody_completes_at_once(service: IssueService) -> None:
    issue_id = await service.create_draft(CONTENT, None)
    assert await publish_now(service, issue_id) == 0
    assert (await service.get(issue_id)).status is IssueStatus.SENT


async def test_concurrent_publish_calls_fan_out_once(service: IssueService, db: Database) -> None:
    await add_subscribers(db, 50)
    issue_id = await service.create_draft(CONTENT, None)
    results = await asyncio.gather(
        *(service.publish(issue_id) for _ in range(5)), return_exceptions=True
    )
    assert sorted(0 if r is None else -1 for r in results) == [-1, -1, -1, -1, 0]
    assert all(isinstance(r, Conflict) for r in results if r is not None)
    await fan_out(service)
    assert (await statuses(db)) == {"queued": 50}


async def test_a_scheduled_issue_goes_out_when_due(service: IssueService, db: Database) -> None:
    await add_subscribers(db, 3)
    issue_id = await service.create_draft(CONTENT, None)
    with pytest.raises(ValidationError, match="future"):
        await service.schedule(issue_id, datetime.now(UTC) - timedelta(minutes=1))
    await service.schedule(issue_id, datetime.now(UTC) + timedelta(hours=1))
    assert (await service.get(issue_id)).status is IssueStatus.SCHEDULED
    assert await service.publish_due() == []
    async with db.connection() as conn:
        await conn.execute("UPDATE newsletter_issues SET scheduled_at = now() - interval '1 s'")
    assert await service.publish_due() == [issue_id]
    assert await service.publish_due() == [], "published once"
    await fan_out(service)
    issue = await service.get(issue_id)
    assert issue.status is IssueStatus.PUBLISHING
    assert issue.recipients == 3


async def test_a_cancelled_schedule_returns_to_draft(service: IssueService) -> None:
    issue_id = await service.create_draft(CONTENT, None)
    await service.schedule(issue_id, datetime.now(UTC) + timedelta(days=1))
    await service.cancel_schedule(issue_id)
    assert (await service.get(issue_id)).status is IssueStatus.DRAFT
    with pytest.raises(Conflict):
        await service.cancel_schedule(issue_id)


async def test_a_test_send_goes_to_one_address_only(
    service: IssueService, db: Database, settings: Settings
) -> None:
    await add_subscribers(db, 3)
    issue_id = await service.create_draft(CONTENT, None)
    proofs = Proofs(db, settings)
    assert await proofs.send(issue_id, ["editor@example.org"], name="Ed") == ["editor@example.org"]
    provider = RecordingProvider()
    await drain(issue_worker(db, settings, provider))
    [message] = provider.messages
    assert message.recipient == "editor@example.org"
    assert message.subject == "[TEST] Hello"
    assert "Dear Ed" in message.html_body
    assert (await service.get(issue_id)).status is IssueStatus.DRAFT
    with pytest.raises(ValidationError, match="'not an address' is not a valid email address"):
        await proofs.send(issue_id, ["ok@example.org", "not an address"])


async def test_failed_deliveries_can_be_retried(
    service: IssueService, db: Database, settings: Settings
) -> None:
    await add_subscribers(db, 4)
    issue_id = await service.create_draft(CONTENT, None)
    await publish_now(service, issue_id)
    async with db.connection() as conn:
        await conn.execute(
            "UPDATE deliveries SET status = 'failed', attempts = 8, last_error = 'boom'"
            " WHERE id IN (SELECT id FROM deliveries ORDER BY id LIMIT 2)"
        )
    provider = RecordingProvider()
    await drain(issue_worker(db, settings, provider))
    progress = await service.progress(issue_id)
    assert progress.status is IssueStatus.SENT
    assert progress.counts == {"sent": 2, "failed": 2}
    assert await service.retry_failed(issue_id) == 2
    assert (await service.get(issue_id)).status is IssueStatus.PUBLISHING
    await drain(issue_worker(db, settings, provider))
    progress = await service.progress(issue_id)
    assert progress.counts == {"sent": 4}
    assert progress.status is IssueStatus.SENT
    assert progress.percent == 100.0
    assert len(provider.sent) == 4


async def test_progress_counts_every_state(service: IssueService, db: Database) -> None:
    await add_subscribers(db, 5)
    issue_id = await service.create_draft(CONTENT, None)
    await publish_now(service, issue_id)
    async with db.connection() as conn:
        await conn.execute(
            "UPDATE deliveries SET status = 'sent' WHERE id IN (SELECT id FROM deliveries LIMIT 2)"
        )
    progress = await service.progress(issue_id)
    assert progress.recipients == 5
    assert progress.done == 2
    assert progress.as_json()["queued"] == 3
    assert progress.as_json()["percent"] == 40.0


async def test_a_deleted_subscriber_is_suppressed_not_failed(
    service: IssueService, db: Database, settings: Settings
) -> None:
    [gone] = await add_subscribers(db, 1)
    issue_id = await service.create_draft(CONTENT, None)
    await publish_now(service, issue_id)
    async with db.connection() as conn:
        await conn.execute("DELETE FROM subscriptions WHERE id = $1", gone)
    provider = RecordingProvider()
    await drain(issue_worker(db, settings, provider))
    assert provider.calls == 0
    assert (await statuses(db)) == {"suppressed": 1}
    assert (await service.get(issue_id)).status is IssueStatus.SENT


async def listen_progress(database_url: str) -> tuple[asyncpg.Connection, asyncio.Queue[str]]:
    conn = await asyncpg.connect(database_url)
    heard: asyncio.Queue[str] = asyncio.Queue()
    await conn.add_listener("herald_progress", lambda *args: heard.put_nowait(args[-1]))
    return conn, heard


async def test_publish_and_retry_notify_progress_listeners(
    service: IssueService, db: Database, database_url: str
) -> None:
    await add_subscribers(db, 2)
    issue_id = await service.create_draft(CONTENT, None)
    conn, heard = await listen_progress(database_url)
    try:
        await publish_now(service, issue_id)
        assert await asyncio.wait_for(heard.get(), 5) == str(issue_id)
        async with db.connection() as c:
            await c.execute("UPDATE deliveries SET status = 'failed' WHERE issue_id = $1", issue_id)
        assert await service.retry_failed(issue_id) == 2
        assert await asyncio.wait_for(heard.get(), 5) == str(issue_id)
    finally:
        await conn.close()


async def test_the_sweep_finishes_an_issue_whose_last_batch_was_recorded_without_completion(
    service: IssueService, db: Database, settings: Settings
) -> None:
    await add_subscribers(db, 3)
    issue_id = await service.create_draft(CONTENT, None)
    other = await service.create_draft(CONTENT, None)
    await publish_now(service, issue_id)
    await publish_now(service, other)
    # Every delivery of the first issue recorded, but its completion step never ran
    # (the worker died in between): only the sweep can finish it.
    async with db.connection() as conn:
        await conn.execute("UPDATE deliveries SET status = 'sent' WHERE issue_id = $1", issue_id)
    assert (await service.get(issue_id)).status is IssueStatus.PUBLISHING
    assert await service.complete_finished() == [issue_id]
    assert (await service.get(issue_id)).status is IssueStatus.SENT
    assert (await service.get(other)).status is IssueStatus.PUBLISHING  # still in flight
    assert await service.complete_finished() == []
