"""What the deliveries table's foreign keys guaranteed, kept by migration 0004's triggers
(the per-row FK checks were most of the fan-out's cost, BENCHMARKS.md P2)."""

from __future__ import annotations

import asyncpg
import pytest

from herald.core.config import Settings
from herald.core.db import Database
from herald.issues.domain import IssueContent
from herald.issues.service import IssueService
from tests.support.newsletters import add_subscribers, publish_now

CONTENT = IssueContent.parse(title="Hello", text_content="News.")


async def test_deleting_subscribers_forgets_them_in_their_deliveries(
    db: Database, settings: Settings
) -> None:
    ids = await add_subscribers(db, 4)
    service = IssueService(db, settings)
    issue_id = await service.create_draft(CONTENT, None)
    assert await publish_now(service, issue_id) == 4
    async with db.connection() as conn:
        # Several rows in one statement: the trigger is per statement, not per row.
        await conn.execute("DELETE FROM subscriptions WHERE id = ANY($1::uuid[])", ids[:3])
        rows = await conn.fetch(
            "SELECT subscriber_id FROM deliveries WHERE issue_id = $1 ORDER BY subscriber_id",
            issue_id,
        )
    kept = [r["subscriber_id"] for r in rows]
    assert len(kept) == 4  # the delivery records stay (history, counts)
    assert kept.count(None) == 3
    assert ids[3] in kept


async def test_an_issue_with_deliveries_cannot_be_deleted(db: Database, settings: Settings) -> None:
    await add_subscribers(db, 1)
    service = IssueService(db, settings)
    published = await service.create_draft(CONTENT, None)
    await publish_now(service, published)
    draft = await service.create_draft(CONTENT, None)
    async with db.connection() as conn:
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await conn.execute("DELETE FROM newsletter_issues WHERE id = $1", published)
        await conn.execute("DELETE FROM newsletter_issues WHERE id = $1", draft)  # none: fine
        assert await conn.fetchval("SELECT count(*) FROM newsletter_issues") == 1


async def test_an_issue_fans_out_to_a_subscriber_once(db: Database, settings: Settings) -> None:
    (subscriber,) = await add_subscribers(db, 1)
    service = IssueService(db, settings)
    issue_id = await service.create_draft(CONTENT, None)
    await publish_now(service, issue_id)
    async with db.connection() as conn:
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(
                "INSERT INTO deliveries (kind, recipient, subscriber_id, issue_id, max_attempts)"
                " VALUES ('issue', 'x@example.com', $1, $2, 3)",
                subscriber,
                issue_id,
            )
