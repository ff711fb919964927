"""A worker killed in the middle of an issue's fan-out: another one finishes it, and every
confirmed subscriber gets exactly one queued delivery.

Each chunk of the fan-out commits its deliveries together with the issue's cursor, so a
SIGKILL loses at most the uncommitted chunk, which the next worker queues again from the
same cursor. A test-only trigger makes every chunk take 40 ms, so the kill lands while
the fan-out is under way (at full speed 20,000 rows take a fraction of a second).
"""

from __future__ import annotations

import signal
import uuid
from pathlib import Path

from herald.core.config import Settings
from herald.core.db import Database
from herald.issues.domain import IssueContent
from herald.issues.service import IssueService
from tests.support.bulk import copy_subscribers
from tests.support.postmark_sink import PostmarkSink
from tests.support.processes import herald_env, herald_process, wait_exit
from tests.support.queue import wait_until

SUBSCRIBERS = 20_000
CHUNK = 250
BATCH = 200

SLOW_CHUNKS = """
CREATE FUNCTION test_slow_chunk() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_sleep(0.04); RETURN NULL; END $$;
CREATE TRIGGER test_slow_chunk AFTER INSERT ON deliveries
    FOR EACH STATEMENT EXECUTE FUNCTION test_slow_chunk();
"""


async def issue_row(db: Database, issue_id: uuid.UUID) -> dict[str, object]:
    async with db.connection() as conn:
        row = await conn.fetchrow(
            "SELECT status, recipients, fanout_done_at FROM newsletter_issues WHERE id = $1",
            issue_id,
        )
    assert row is not None
    return dict(row)


async def test_a_fan_out_killed_midway_is_finished_by_another_worker_without_double_rows(
    database_url: str, db: Database, settings: Settings, tmp_path: Path
) -> None:
    subscribers = await copy_subscribers(db, SUBSCRIBERS)
    await copy_subscribers(db, 50, status="pending_confirmation", prefix="pending")
    async with db.connection() as conn:
        await conn.execute(SLOW_CHUNKS)
    service = IssueService(db, settings)
    issue_id = await service.create_draft(
        IssueContent("Fan-out crash", "<p>Hi {{ subscriber.name }}</p>", "Hi"), None
    )
    await service.publish(issue_id)  # marks the issue: the workers queue its deliveries
    async with PostmarkSink(token="t", record=False, count_recipients=True) as sink:
        env = herald_env(
            HERALD_DATABASE_URL=database_url,
            HERALD_DATA_DIR=str(tmp_path / "data"),
            HERALD_SECRET_KEY="k" * 48,
            HERALD_BASE_URL="http://herald.test",
            HERALD_EMAIL__PROVIDER="postmark",
            HERALD_EMAIL__POSTMARK__BASE_URL=sink.base_url,
            HERALD_EMAIL__POSTMARK__SERVER_TOKEN="t",
            HERALD_DELIVERY__FANOUT_CHUNK=str(CHUNK),
            HERALD_DELIVERY__BATCH_SIZE=str(BATCH),
            HERALD_DELIVERY__LEASE_SECONDS="2",
            HERALD_DELIVERY__POLL_INTERVAL_SECONDS="0.1",
        )
        async with herald_process("worker", env=env, log_path=tmp_path / "a.log") as first:

            async def midway() -> bool:
                recipients = (await issue_row(db, issue_id))["recipients"]
                return isinstance(recipients, int) and recipients >= SUBSCRIBERS // 4

            await wait_until(midway, timeout=60, interval=0.05)
            first.send_signal(signal.SIGKILL)
            assert await wait_exit(first, 10) == -signal.SIGKILL
        killed_at = await issue_row(db, issue_id)
        assert killed_at["fanout_done_at"] is None, "the kill came too late to test anything"

        async with herald_process("worker", env=env, log_path=tmp_path / "b.log") as second:

            async def sent() -> bool:
                return (await issue_row(db, issue_id))["status"] == "sent"

            await wait_until(sent, timeout=120, interval=0.1)
            second.send_signal(signal.SIGTERM)
            assert await wait_exit(second, 20) == 0

    async with db.connection() as conn:
        counts = await conn.fetchrow(
            "SELECT count(*) AS n, count(DISTINCT subscriber_id) AS people,"
            " count(*) FILTER (WHERE status = 'sent') AS sent"
            " FROM deliveries WHERE issue_id = $1",
            issue_id,
        )
    assert counts is not None
    assert (counts["n"], counts["people"], counts["sent"]) == (SUBSCRIBERS,) * 3
    assert (await issue_row(db, issue_id))["recipients"] == SUBSCRIBERS
    assert set(sink.receipts) == set(subscribers), "every confirmed subscriber, nobody else"
    duplicates = sum(sink.receipts.values()) - SUBSCRIBERS
    assert duplicates <= BATCH, f"{duplicates} duplicates: more than the batch in hand"
