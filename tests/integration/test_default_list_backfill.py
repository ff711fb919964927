"""Migration 0018's backfill (subscriptions/backfill.py): subscriptions from before the
lists join the default list with their own status, by a leased, checkpointed job that a
starting worker enqueues once — exactly once per subscription, through crashes, and
while the previous release keeps changing statuses."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from herald.core.db import Connection, Database
from herald.core.errors import Unavailable
from herald.jobs import repository as jobs
from herald.jobs.domain import Job, JobStatus, Step
from herald.jobs.runner import JobRunner
from herald.subscriptions import backfill
from herald.subscriptions.backfill import DefaultListBackfill, enqueue_when_needed


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url)
    try:
        yield connection
    finally:
        await connection.close()


async def old_subscriptions(conn: asyncpg.Connection, statuses: list[str]) -> list[uuid.UUID]:
    """Subscriptions as the previous release left them: created before migration 0018,
    no membership (inserted without the triggers, as before 0018)."""
    ids = [uuid.uuid4() for _ in statuses]
    await conn.execute("SET session_replication_role = replica")  # no triggers: pre-0018
    await conn.executemany(
        "INSERT INTO subscriptions (id, email, name, status, created_at, confirmed_at,"
        " unsubscribed_at) VALUES ($1, $2, 'Old', $3, timestamptz '2025-01-01' + $4 * interval"
        " '1 minute', CASE WHEN $3 <> 'pending_confirmation' THEN timestamptz '2025-02-01' END,"
        " CASE WHEN $3 = 'unsubscribed' THEN timestamptz '2025-03-01' END)",
        [
            (i, f"old{n}@example.com", s, n)
            for n, (i, s) in enumerate(zip(ids, statuses, strict=True))
        ],
    )
    await conn.execute("SET session_replication_role = origin")
    return ids


async def mismatches(conn: asyncpg.Connection) -> int:
    """Subscriptions without exactly one membership, in the default list, of their status."""
    count: int = await conn.fetchval(
        """
        SELECT count(*) FROM subscriptions AS s
        WHERE (SELECT count(*) FROM list_memberships AS m WHERE m.subscriber_id = s.id) <> 1
           OR NOT EXISTS (
               SELECT 1 FROM list_memberships AS m JOIN lists AS l ON l.id = m.list_id
               WHERE m.subscriber_id = s.id AND l.slug = 'default' AND m.status = s.status)
        """
    )
    return count


def runner(db: Database, handler: object) -> JobRunner:
    return JobRunner(db, {backfill.KIND: handler}, lease_seconds=5)  # type: ignore[dict-item]


async def get(db: Database, job_id: uuid.UUID) -> Job:
    async with db.connection() as c:
        job = await jobs.get(c, job_id)
    assert job is not None
    return job


async def test_old_subscriptions_join_the_default_list_with_their_status(
    db: Database, conn: asyncpg.Connection
) -> None:
    statuses = ["confirmed", "pending_confirmation", "unsubscribed"] * 7
    ids = await old_subscriptions(conn, statuses)
    default = await conn.fetchval("SELECT id FROM lists WHERE slug = 'default'")
    other = await conn.fetchval("INSERT INTO lists (slug, name) VALUES ('other', 'O') RETURNING id")
    # From before the lists, since added to another list (an import, the API): it was
    # a default-list reader all the same, and joins it.
    await conn.execute(
        "INSERT INTO list_memberships (list_id, subscriber_id, status, source)"
        " VALUES ($1, $2, 'confirmed', 'import')",
        other,
        ids[0],
    )
    # From before the lists, that left the default list alone (one-click of one list):
    # its choice stands.
    await conn.execute(
        "INSERT INTO list_memberships (list_id, subscriber_id, status, source)"
        " VALUES ($1, $2, 'unsubscribed', 'one-click')",
        default,
        ids[3],
    )
    # One of this release: on another list only, never to be added to default.
    await conn.execute(
        "WITH s AS (INSERT INTO subscriptions (id, email, name, status)"
        " VALUES ($1, 'new@example.com', 'New', 'confirmed') RETURNING id)"
        " INSERT INTO list_memberships (list_id, subscriber_id, status, source)"
        " SELECT $2, id, 'confirmed', 'form' FROM s",
        uuid.uuid4(),
        other,
    )
    job = await enqueue_when_needed(db)
    assert job is not None
    assert job.kind == backfill.KIND
    assert await enqueue_when_needed(db) is None, "one is queued already"

    assert await runner(db, DefaultListBackfill(batch_size=4)).run_one()
    done = await get(db, job.id)
    assert (done.status, done.done, done.skipped) == (JobStatus.DONE, 20, 2)
    assert done.message == "20 subscribers added to the default list (2 in it already, or newer)."
    rows = await conn.fetch(
        "SELECT s.email, s.status AS s, m.status AS m, m.source,"
        " m.confirmed_at = s.confirmed_at AS c,"
        " m.unsubscribed_at IS NOT DISTINCT FROM s.unsubscribed_at AS u,"
        " m.created_at = s.created_at AS t"
        " FROM subscriptions s JOIN list_memberships m ON m.subscriber_id = s.id"
        " WHERE m.list_id = $1 AND m.source = 'backfill'",
        default,
    )
    assert len(rows) == 20
    assert all(r["s"] == r["m"] and r["u"] and r["t"] for r in rows)
    assert "old0@example.com" in {r["email"] for r in rows}
    left = await conn.fetchval(
        "SELECT status FROM list_memberships WHERE list_id = $1 AND subscriber_id = $2",
        default,
        ids[3],
    )
    assert left == "unsubscribed", "a reader's own choice stands"
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM list_memberships m JOIN subscriptions s ON s.id = m.subscriber_id"
            " WHERE s.email = 'new@example.com'"
        )
        == 1
    ), "a reader of this release keeps the lists chosen"
    assert await conn.fetchval("SELECT name FROM backfills") == "default_list"
    await conn.execute("DELETE FROM jobs")  # housekeeping, 30 days later
    assert await enqueue_when_needed(db) is None, "done once: never again"


async def test_nothing_to_do_enqueues_nothing(db: Database, conn: asyncpg.Connection) -> None:
    await conn.execute(
        "INSERT INTO subscriptions (id, email, name, status) VALUES ($1, 'a@example.com', 'A',"
        " 'confirmed')",
        uuid.uuid4(),
    )  # the trigger made its membership
    assert await enqueue_when_needed(db) is None
    assert await conn.fetchval("SELECT name FROM backfills") == "default_list", "remembered"
    await old_subscriptions(conn, ["confirmed"])  # cannot happen: older than the lists
    assert await enqueue_when_needed(db) is None, "no walk once finished"


async def test_many_workers_starting_together_enqueue_one_job(
    db: Database, conn: asyncpg.Connection
) -> None:
    await old_subscriptions(conn, ["confirmed"] * 3)
    found = await asyncio.gather(*(enqueue_when_needed(db) for _ in range(8)))
    assert len([job for job in found if job is not None]) == 1
    assert await conn.fetchval("SELECT count(*) FROM jobs WHERE kind = $1", backfill.KIND) == 1


async def test_the_check_never_stops_a_worker(db: Database, conn: asyncpg.Connection) -> None:
    await conn.execute("ALTER TABLE lists RENAME TO lists_gone")  # a broken database
    try:
        assert await enqueue_when_needed(db) is None
    finally:
        await conn.execute("ALTER TABLE lists_gone RENAME TO lists")


class DiesMidStep:
    """Its second step writes its batch, then its process "dies" before the checkpoint
    commits (the transaction is never committed, as when a worker is SIGKILLed)."""

    def __init__(self, inner: DefaultListBackfill) -> None:
        self.inner = inner
        self.steps = 0

    async def step(self, conn: Connection, job: Job) -> Step:
        self.steps += 1
        step = await self.inner.step(conn, job)
        if self.steps == 2:
            raise asyncio.CancelledError
        return step

    def summary(self, job: Job) -> str:
        return self.inner.summary(job)


async def test_a_step_killed_mid_way_resumes_from_its_checkpoint_without_duplicates(
    db: Database, conn: asyncpg.Connection
) -> None:
    await old_subscriptions(conn, ["confirmed", "pending_confirmation"] * 10)
    job = await enqueue_when_needed(db)
    assert job is not None
    with pytest.raises(asyncio.CancelledError):
        await runner(db, DiesMidStep(DefaultListBackfill(batch_size=6))).run_one()
    dead = await get(db, job.id)
    assert (dead.status, dead.done) == (JobStatus.RUNNING, 6), "the first step's checkpoint"
    assert await conn.fetchval("SELECT count(*) FROM list_memberships") == 6, "step 2 undone"
    healthy = runner(db, DefaultListBackfill(batch_size=6))
    assert not await healthy.run_one(), "its lease is still held"
    await conn.execute(
        "UPDATE jobs SET leased_until = now() - interval '1 s' WHERE id = $1", job.id
    )
    assert await healthy.run_one()
    done = await get(db, job.id)
    assert (done.status, done.done, done.skipped) == (JobStatus.DONE, 20, 0)
    assert await mismatches(conn) == 0


async def test_a_deadlocked_step_is_retried_not_failed(
    db: Database, conn: asyncpg.Connection
) -> None:
    """Postgres may pick the step as a deadlock's victim (a concurrent bulk update of the
    previous release): the job is released for a retry, not failed for good."""
    await old_subscriptions(conn, ["confirmed"] * 5)
    await conn.execute(
        """
        CREATE TABLE deadlock_armed (armed boolean NOT NULL);
        INSERT INTO deadlock_armed VALUES (true);
        CREATE FUNCTION deadlock_once() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF (SELECT armed FROM deadlock_armed) THEN
                RAISE EXCEPTION USING ERRCODE = '40P01', MESSAGE = 'deadlock detected (test)';
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER deadlock_once BEFORE INSERT ON list_memberships
            FOR EACH ROW EXECUTE FUNCTION deadlock_once();
        """
    )
    job = await enqueue_when_needed(db)
    assert job is not None
    worker = runner(db, DefaultListBackfill())
    with pytest.raises(Unavailable, match="rolled back"):
        await worker.run_one()
    assert (await get(db, job.id)).status is JobStatus.QUEUED, "released, not failed"
    await conn.execute("UPDATE deadlock_armed SET armed = false")
    assert await worker.run_one()
    assert (await get(db, job.id)).status is JobStatus.DONE
    assert await mismatches(conn) == 0


@pytest.mark.slow
@pytest.mark.timeout(1800)  # generating the rows takes minutes on a shared 2-core machine
async def test_a_million_subscriptions_while_the_previous_release_changes_statuses(
    db: Database, conn: asyncpg.Connection, database_url: str
) -> None:
    total = 1_000_000
    generating = time.perf_counter()
    await conn.execute("SET session_replication_role = replica")  # pre-0018: no memberships
    await conn.execute(
        """
        INSERT INTO subscriptions (id, email, name, status, created_at, confirmed_at,
                                   unsubscribed_at)
        SELECT gen_random_uuid(), 'reader' || n || '@example.com', 'Reader ' || n,
               (ARRAY['confirmed', 'confirmed', 'pending_confirmation', 'unsubscribed'])[n % 4 + 1],
               timestamptz '2025-01-01' + n * interval '1 second',
               CASE WHEN n % 4 IN (0, 1, 3) THEN timestamptz '2025-06-01' END,
               CASE WHEN n % 4 = 3 THEN timestamptz '2025-07-01' END
        FROM generate_series(1, $1::integer) AS n
        """,
        total,
    )
    await conn.execute("SET session_replication_role = origin")
    await conn.execute("ANALYZE subscriptions")
    print(f"\n{total:,} subscriptions generated in {time.perf_counter() - generating:.0f} s")
    pending = [
        r["id"]
        for r in await conn.fetch(
            "SELECT id FROM subscriptions WHERE status = 'pending_confirmation'"
        )
    ]
    confirmed = [
        r["id"]
        for r in await conn.fetch(
            "SELECT id FROM subscriptions WHERE status = 'confirmed' LIMIT 300000"
        )
    ]
    random.seed(18)
    job = await enqueue_when_needed(db)
    assert job is not None
    stop = asyncio.Event()
    changed = 0

    async def previous_release() -> None:
        """The previous release's own statements: confirm (one row), unsubscribe (one row)."""
        nonlocal changed
        old = await asyncpg.connect(database_url)
        try:
            while not stop.is_set():
                if random.random() < 0.5 and pending:
                    await old.execute(
                        "UPDATE subscriptions SET status = 'confirmed', confirmed_at = now(),"
                        " updated_at = now() WHERE id = $1::uuid"
                        " AND status = 'pending_confirmation'",
                        pending.pop(random.randrange(len(pending))),
                    )
                else:
                    await old.execute(
                        "UPDATE subscriptions SET status = 'unsubscribed', unsubscribed_at ="
                        " now(), updated_at = now() WHERE id = $1::uuid"
                        " AND status <> 'unsubscribed'",
                        confirmed.pop(random.randrange(len(confirmed))),
                    )
                changed += 1
        finally:
            await old.close()

    updaters = [asyncio.create_task(previous_release()) for _ in range(2)]
    started = time.perf_counter()
    assert await runner(db, DefaultListBackfill()).run_one()
    elapsed = time.perf_counter() - started
    stop.set()
    await asyncio.gather(*updaters)
    done = await get(db, job.id)
    print(  # the figure BENCHMARKS.md records
        f"\nbackfill of {total:,} subscriptions: {elapsed:.1f} s"
        f" ({total / elapsed:,.0f}/s), {changed:,} concurrent status changes"
    )
    assert done.status is JobStatus.DONE, done.message
    assert done.done + done.skipped == total
    assert await mismatches(conn) == 0
    assert await conn.fetchval("SELECT count(*) FROM list_memberships") == total
    # A worker's start-up check once housekeeping has deleted the finished job (30 days
    # on): the backfills row answers it.
    await conn.execute("DELETE FROM jobs WHERE id = $1", job.id)
    checking = time.perf_counter()
    assert await enqueue_when_needed(db) is None
    print(f"start-up check once finished: {(time.perf_counter() - checking) * 1000:.1f} ms")
