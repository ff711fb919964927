"""Publishing marks an issue; the workers queue its deliveries in resumable chunks.

Before: the fan-out was one ``INSERT … SELECT`` inside the publishing request, so a
list past the statement timeout could never be published (a scheduled one retried
forever) and one failing scheduled issue held back every other due one.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from herald.core.config import Settings
from herald.core.db import Database
from herald.issues import repository
from herald.issues.domain import IssueContent, IssueStatus
from herald.issues.service import IssueService
from tests.support.bulk import copy_subscribers
from tests.support.database import make_settings
from tests.support.newsletters import add_subscribers, fan_out

CONTENT = IssueContent.parse(title="Weekly", text_content="Hello {{ subscriber.name }}")


async def delivery_count(db: Database) -> tuple[int, int]:
    """(deliveries, distinct subscribers among them)."""
    async with db.connection() as conn:
        row = await conn.fetchrow(
            "SELECT count(*) AS n, count(DISTINCT subscriber_id) AS distinct_n"
            " FROM deliveries WHERE issue_id IS NOT NULL"
        )
    assert row is not None
    return row["n"], row["distinct_n"]


async def test_publishing_returns_before_any_delivery_is_queued(
    db: Database, settings: Settings
) -> None:
    await add_subscribers(db, 5)
    service = IssueService(db, settings)
    issue_id = await service.create_draft(CONTENT, None)
    await service.publish(issue_id)
    issue = await service.get(issue_id)
    assert issue.status is IssueStatus.PUBLISHING
    assert issue.fanning_out
    assert await delivery_count(db) == (0, 0)
    progress = await service.progress(issue_id)
    assert progress.as_json()["fanning_out"] is True
    assert progress.percent == 0.0
    await fan_out(service)
    assert await delivery_count(db) == (5, 5)
    assert not (await service.get(issue_id)).fanning_out


async def test_a_list_too_big_for_one_statement_is_queued_in_chunks(
    database_url: str, db: Database
) -> None:
    # Every statement may take 1.5 s at most: one INSERT of 200,000 deliveries cannot
    # finish in that (several seconds on a quiet machine), chunks of 1,000 do, even on a
    # loaded one (2,000 under 0.5 s did not, once the counting triggers of 0014 came).
    settings = make_settings(
        database_url,
        db={"statement_timeout_seconds": 1.5},
        delivery={"fanout_chunk": 1_000},
    )
    await copy_subscribers(db, 200_000)
    db = await Database.open(database_url, settings.db, "herald-test-timeout")
    try:
        service = IssueService(db, settings)
        issue_id = await service.create_draft(CONTENT, None)
        await service.publish(issue_id)
        await fan_out(service)
        issue = await service.get(issue_id)
        assert issue.recipients == 200_000
        assert issue.fanout_error is None
        assert await delivery_count(db) == (200_000, 200_000)
    finally:
        await db.close()


async def test_a_failed_chunk_is_rolled_back_shown_and_retried_after_a_backoff(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    await add_subscribers(db, 30)
    settings = settings.with_overrides(
        delivery=settings.delivery.model_copy(update={"fanout_chunk": 7})
    )
    service = IssueService(db, settings)
    issue_id = await service.create_draft(CONTENT, None)
    await service.publish(issue_id)
    assert await service.fan_out_step() is not None
    assert await service.fan_out_step() is not None
    assert await delivery_count(db) == (14, 14)

    real_chunk = repository.fan_out_chunk

    async def crash_after_inserting(*args: object, **kwargs: object) -> object:
        await real_chunk(*args, **kwargs)  # type: ignore[arg-type]
        raise RuntimeError("worker lost mid-chunk")

    monkeypatch.setattr(repository, "fan_out_chunk", crash_after_inserting)
    await service.fan_out_step()
    monkeypatch.setattr(repository, "fan_out_chunk", real_chunk)
    assert await delivery_count(db) == (14, 14), "the failed chunk's rows were rolled back"
    issue = await service.get(issue_id)
    assert issue.fanout_error == "queueing recipients failed: RuntimeError: worker lost mid-chunk"
    assert issue.fanout_attempts == 1
    assert issue.fanout_retry_at is not None
    assert issue.fanout_retry_at > datetime.now(UTC)
    assert (await service.progress(issue_id)).as_json()["fanout_error"] == issue.fanout_error
    assert await service.fan_out_step() is None, "backing off: nothing to do yet"

    async with db.connection() as conn:
        await conn.execute("UPDATE newsletter_issues SET fanout_retry_at = now()")
    await fan_out(service)
    assert await delivery_count(db) == (30, 30)
    issue = await service.get(issue_id)
    assert (issue.recipients, issue.fanout_error, issue.fanout_attempts) == (30, None, 0)


async def test_completion_waits_for_the_fan_out(db: Database, settings: Settings) -> None:
    await add_subscribers(db, 3)
    service = IssueService(db, settings)
    issue_id = await service.create_draft(CONTENT, None)
    await service.publish(issue_id)
    # Nothing is queued or in flight yet, but the issue is not finished.
    assert await service.complete_finished() == []
    assert (await service.get(issue_id)).status is IssueStatus.PUBLISHING


async def test_publishing_to_nobody_is_sent_once_the_fan_out_finds_nobody(
    db: Database, settings: Settings
) -> None:
    service = IssueService(db, settings)
    issue_id = await service.create_draft(CONTENT, None)
    await service.publish(issue_id)
    await fan_out(service)
    issue = await service.get(issue_id)
    assert (issue.status, issue.recipients) == (IssueStatus.SENT, 0)


async def make_due(db: Database, service: IssueService) -> uuid.UUID:
    issue_id = await service.create_draft(CONTENT, None)
    await service.schedule(issue_id, datetime.now(UTC) + timedelta(hours=1))
    async with db.connection() as conn:
        await conn.execute(
            "UPDATE newsletter_issues SET scheduled_at = now() - interval '1 s' WHERE id = $1",
            issue_id,
        )
    return issue_id


async def test_a_failing_scheduled_issue_does_not_hold_back_the_others(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    await add_subscribers(db, 2)
    service = IssueService(db, settings)
    failing = await make_due(db, service)
    healthy = await make_due(db, service)
    real_start = repository.start_publishing

    async def start(conn: object, issue_id: uuid.UUID, traceparent: str | None = None) -> bool:
        if issue_id == failing:
            raise RuntimeError("disk full")
        return await real_start(conn, issue_id, traceparent)  # type: ignore[arg-type]

    monkeypatch.setattr(repository, "start_publishing", start)
    assert await service.publish_due() == [healthy]
    issue = await service.get(failing)
    assert issue.status is IssueStatus.SCHEDULED
    assert issue.publish_error == "scheduled publishing failed: RuntimeError('disk full')"
    assert issue.publish_attempts == 1
    assert issue.publish_retry_at is not None
    assert issue.publish_retry_at > datetime.now(UTC)
    assert await service.publish_due() == [], "backing off"
    monkeypatch.setattr(repository, "start_publishing", real_start)
    async with db.connection() as conn:
        await conn.execute("UPDATE newsletter_issues SET publish_retry_at = now()")
    assert await service.publish_due() == [failing]
    issue = await service.get(failing)
    assert (issue.status, issue.publish_error) == (IssueStatus.PUBLISHING, None)


async def test_a_scheduled_issue_that_cannot_render_goes_back_to_draft_with_its_error(
    db: Database, settings: Settings
) -> None:
    service = IssueService(db, settings)
    issue_id = await make_due(db, service)
    async with db.connection() as conn:  # saved by an older Herald without the render check
        await conn.execute(
            "UPDATE newsletter_issues SET text_content = '{{ 1 // 0 }}' WHERE id = $1", issue_id
        )
    assert await service.publish_due() == []
    issue = await service.get(issue_id)
    assert issue.status is IssueStatus.DRAFT
    assert issue.publish_error is not None
    assert "ZeroDivisionError" in issue.publish_error


def _rows_read(plan: dict[str, Any], relation: str) -> int:
    """Rows the plan's scans of ``relation`` returned, over all their loops."""
    own = plan["Actual Rows"] * plan["Actual Loops"] if plan.get("Relation Name") == relation else 0
    return int(own) + sum(_rows_read(child, relation) for child in plan.get("Plans", []))


@pytest.mark.parametrize("one_list", [True, False])
async def test_a_chunk_reads_the_subscriptions_after_its_cursor_only(
    db: Database, settings: Settings, one_list: bool
) -> None:
    # Postgres does not carry "m.subscriber_id > cursor" across the join to s.id: without
    # its own bound, every chunk's merge join read subscriptions_confirmed from its first
    # row (a 1M fan-out's last chunk read 950,000 rows it skipped).
    await copy_subscribers(db, 4000)
    async with db.connection() as conn:
        await conn.execute("ANALYZE subscriptions")
        await conn.execute("ANALYZE list_memberships")
        ids = await conn.fetch("SELECT id FROM subscriptions ORDER BY id")
    cursor = ids[3000]["id"]  # 999 rows after it
    issue_id = await IssueService(db, settings).create_draft(CONTENT, None)
    query = repository.Q["fan_out_chunk_one_list" if one_list else "fan_out_chunk"]
    async with db.transaction() as conn:
        plan = await conn.fetchval(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + query.replace("/* segment */ TRUE", "TRUE"),
            issue_id,
            cursor,
            500,
            5,
        )
        queued = await conn.fetchval(
            "SELECT count(*) FROM deliveries WHERE issue_id = $1", issue_id
        )
    assert queued == 500
    read = _rows_read(json.loads(plan)[0]["Plan"], "subscriptions")
    assert 500 <= read < 1000, read  # not the 3,000 before the cursor
