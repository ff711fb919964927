"""An issue's deliveries by status, kept by the deliveries_count_* triggers (migration 0014),
and the issue page's recipient pages and failure reasons over deliveries_issue_status_id
(0013)."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter

import asyncpg
import httpx

from herald.core import migrate
from herald.core.config import Settings
from herald.core.db import Database
from herald.delivery.domain import DeliveryStatus
from herald.issues import recipients, repository
from herald.issues.domain import IssueContent, IssueStatus
from herald.issues.service import IssueService
from herald.issues.views import FAILURE_SAMPLE
from tests.support.database import with_database
from tests.support.newsletters import add_subscribers, drain, issue_worker
from tests.support.queue import RecordingProvider


async def new_issue(conn: asyncpg.Connection, recipients: int) -> uuid.UUID:
    """A published issue with ``recipients`` queued deliveries (no subscribers needed)."""
    issue_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO newsletter_issues (id, title, html_content, text_content, status,"
        " published_at, recipients) VALUES ($1, 'Counted', '<p>hi</p>', 'hi', 'publishing',"
        " now(), $2)",
        issue_id,
        recipients,
    )
    await conn.execute(
        "INSERT INTO deliveries (kind, recipient, issue_id, max_attempts)"
        " SELECT 'issue', 'r' || g || '@example.com', $1, 5 FROM generate_series(1, $2) AS g",
        issue_id,
        recipients,
    )
    return issue_id


async def counted(conn: asyncpg.Connection) -> dict[tuple[uuid.UUID, str], int]:
    rows = await conn.fetch(
        "SELECT issue_id, status, sum(n) AS n FROM issue_delivery_counts"
        " GROUP BY 1, 2 HAVING sum(n) <> 0"
    )
    return {(r["issue_id"], r["status"]): int(r["n"]) for r in rows}


async def actual(conn: asyncpg.Connection) -> dict[tuple[uuid.UUID, str], int]:
    rows = await conn.fetch(
        "SELECT issue_id, status, count(*) AS n FROM deliveries"
        " WHERE issue_id IS NOT NULL GROUP BY 1, 2"
    )
    return {(r["issue_id"], r["status"]): int(r["n"]) for r in rows}


async def test_counts_follow_inserts_updates_deletes_and_rollbacks(db: Database) -> None:
    async with db.connection() as conn:
        one = await new_issue(conn, 30)
        two = await new_issue(conn, 5)
        # A confirmation email (no issue) is not counted.
        await conn.execute(
            "INSERT INTO deliveries (kind, recipient, max_attempts, message)"
            " VALUES ('confirmation', 'c@example.com', 5, '{}')"
        )
        assert await repository.delivery_counts(conn, one) == {DeliveryStatus.QUEUED: 30}
        await conn.execute(
            "UPDATE deliveries SET status = 'sending'"
            " WHERE id IN (SELECT id FROM deliveries WHERE issue_id IS NOT NULL"
            " ORDER BY id LIMIT 33)"
        )
        await conn.execute(
            "UPDATE deliveries SET status = 'failed', last_error = 'mailbox full'"
            " WHERE issue_id = $1 AND status = 'sending' AND id % 3 = 0",
            one,
        )
        await conn.execute(
            "UPDATE deliveries SET status = 'sent' WHERE issue_id = $1 AND status = 'sending'",
            one,
        )
        # A change that leaves every status as it was, and one that is rolled back.
        await conn.execute("UPDATE deliveries SET available_at = now() WHERE issue_id = $1", one)
        transaction = conn.transaction()
        await transaction.start()
        await conn.execute("UPDATE deliveries SET status = 'suppressed' WHERE issue_id = $1", two)
        await transaction.rollback()
        await conn.execute(
            "DELETE FROM deliveries"
            " WHERE id = (SELECT max(id) FROM deliveries WHERE issue_id = $1)",
            two,
        )
        assert await counted(conn) == await actual(conn)
        counts = await repository.delivery_counts(conn, one)
        assert sum(counts.values()) == 30
        assert counts[DeliveryStatus.FAILED] == 10
        assert await repository.delivery_counts(conn, two) == {
            DeliveryStatus.SENDING: 3,
            DeliveryStatus.QUEUED: 1,
        }
        await conn.execute("TRUNCATE deliveries")
        assert await counted(conn) == {}


async def churn(dsn: str, issues: list[uuid.UUID], seed: int, rounds: int) -> int:
    """Transactions of several statements, as workers run them: claim a few rows, then move
    them on (sent, failed, suppressed, queued again); one in five is rolled back."""
    rng = random.Random(seed)
    conn = await asyncpg.connect(dsn)
    rolled_back = 0
    try:
        for _ in range(rounds):
            transaction = conn.transaction()
            await transaction.start()
            claimed = await conn.fetch(
                "WITH due AS (SELECT id FROM deliveries WHERE issue_id = ANY($1)"
                " AND status IN ('queued', 'failed') ORDER BY random() LIMIT $2"
                " FOR UPDATE SKIP LOCKED)"
                " UPDATE deliveries AS d SET status = 'sending' FROM due WHERE d.id = due.id"
                " RETURNING d.id",
                rng.sample(issues, rng.randint(1, len(issues))),
                rng.randint(1, 8),
            )
            ids = [r["id"] for r in claimed]
            rng.shuffle(ids)
            for part, status in zip(
                (ids[0::4], ids[1::4], ids[2::4], ids[3::4]),
                ("sent", "failed", "suppressed", "queued"),
                strict=True,
            ):
                if part:
                    await conn.execute(
                        "UPDATE deliveries SET status = $2 WHERE id = ANY($1)", part, status
                    )
            if rng.random() < 0.2:
                await transaction.rollback()
                rolled_back += 1
            else:
                await transaction.commit()
    finally:
        await conn.close()
    return rolled_back


async def test_counts_stay_right_under_concurrent_workers_and_compaction(
    database_url: str, db: Database
) -> None:
    async with db.connection() as conn:
        issues = [await new_issue(conn, 200) for _ in range(3)]

    async def compact_meanwhile() -> None:
        async with db.connection() as conn:
            for n in range(40):
                await conn.execute(repository.Q["compact_delivery_counts"], issues[n % 3])
                await asyncio.sleep(0.005)

    results = await asyncio.gather(
        *(churn(database_url, issues, seed, 40) for seed in range(6)), compact_meanwhile()
    )
    assert sum(r for r in results if r) > 0  # some were rolled back
    async with db.connection() as conn:
        assert await counted(conn) == await actual(conn)
        for issue_id in issues:
            counts = await repository.delivery_counts(conn, issue_id)
            assert sum(counts.values()) == 200
            assert counts.get(DeliveryStatus.SENT, 0) > 0


async def test_a_completed_issue_has_one_count_row_per_status(
    db: Database, settings: Settings
) -> None:
    await add_subscribers(db, 12)
    service = IssueService(db, settings)
    issue_id = await service.create_draft(IssueContent("Folded", "<p>hi</p>", "hi"), None)
    await service.publish(issue_id)
    await drain(issue_worker(db, settings, RecordingProvider(), batch_size=5))
    await service.complete_finished()
    assert (await service.get(issue_id)).status is IssueStatus.SENT
    async with db.connection() as conn:
        rows = await conn.fetch(
            "SELECT status, n FROM issue_delivery_counts WHERE issue_id = $1", issue_id
        )
    assert [(r["status"], r["n"]) for r in rows] == [("sent", 12)]
    progress = await service.progress(issue_id)
    assert progress.counts == {DeliveryStatus.SENT: 12}
    assert progress.percent == 100.0


async def test_recipient_pages_of_every_status_list_each_recipient_once_newest_first(
    db: Database,
) -> None:
    async with db.connection() as conn:
        issue_id = await new_issue(conn, 40)
        await new_issue(conn, 10)  # another issue's rows are never shown
        for status, step in (("sent", 2), ("failed", 3), ("suppressed", 7), ("sending", 11)):
            await conn.execute(
                "UPDATE deliveries SET status = $3 WHERE issue_id = $1 AND id % $2 = 0",
                issue_id,
                step,
                status,
            )
        expected = await conn.fetch(
            "SELECT id, status FROM deliveries WHERE issue_id = $1 ORDER BY id DESC", issue_id
        )
        pages: list[list[recipients.DeliveryRow]] = []
        before = None
        while True:
            page = await recipients.recent_deliveries(conn, issue_id, None, 6, before)
            if not page:
                break
            pages.append(page)
            before = page[-1].id
        assert [d.id for p in pages for d in p] == [r["id"] for r in expected]
        assert len(pages) == 7
        for status in DeliveryStatus:
            shown = await recipients.recent_deliveries(conn, issue_id, status, 100)
            assert [d.id for d in shown] == [r["id"] for r in expected if r["status"] == status]
        counts = await repository.delivery_counts(conn, issue_id)
        assert Counter(r["status"] for r in expected) == counts


async def test_migration_0014_counts_the_deliveries_already_there(pg_admin_dsn: str) -> None:
    name = f"herald_0014_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(pg_admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = with_database(pg_admin_dsn, name)
    try:
        await migrate.upgrade_async(dsn, "0013")
        conn = await asyncpg.connect(dsn)
        try:
            issue_id = await new_issue(conn, 25)
            await conn.execute(
                "UPDATE deliveries SET status = 'failed' WHERE issue_id = $1 AND id % 5 = 0",
                issue_id,
            )
            await migrate.upgrade_async(dsn, "0014")
            assert await counted(conn) == {(issue_id, "queued"): 20, (issue_id, "failed"): 5}
            await conn.execute(
                "UPDATE deliveries SET status = 'sent' WHERE issue_id = $1", issue_id
            )
            assert await counted(conn) == {(issue_id, "sent"): 25}
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


async def test_failure_reasons_are_those_of_the_last_queued_failures(
    db: Database, admin_client: httpx.AsyncClient
) -> None:
    async with db.connection() as conn:
        issue_id = await new_issue(conn, FAILURE_SAMPLE + 300)
        ids = await conn.fetch(
            "SELECT id FROM deliveries WHERE issue_id = $1 ORDER BY id DESC", issue_id
        )
        newest = [r["id"] for r in ids]
        for chunk, reason in (
            (newest[:700], "mailbox full"),
            (newest[700:FAILURE_SAMPLE], None),
            (newest[FAILURE_SAMPLE : FAILURE_SAMPLE + 200], "an older reason"),
        ):
            await conn.execute(
                "UPDATE deliveries SET status = 'failed', last_error = $2 WHERE id = ANY($1)",
                chunk,
                reason,
            )
    page = await admin_client.get(f"/admin/issues/{issue_id}")
    assert page.status_code == 200
    assert "Reasons of the last queued 1,000 of the 1,200 failed deliveries." in page.text
    assert '<tr><td>mailbox full</td><td class="num">700</td></tr>' in page.text
    assert '<tr><td>no error recorded</td><td class="num">300</td></tr>' in page.text
    assert "an older reason" not in page.text.split('id="recipients"')[0]
    assert "Retry 1200 failed deliveries" in page.text
