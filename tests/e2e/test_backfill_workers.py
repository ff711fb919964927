"""Migration 0018's default-list backfill with real ``herald worker`` processes: three
workers starting together enqueue it once; killed (SIGKILL) while it runs, a fresh worker
finishes it from its checkpoint once the lease runs out, and every subscription from
before the lists ends with exactly one default membership of its status.

A test-only trigger makes every step take 0.3 s, so the kill lands while the job is under
way."""

from __future__ import annotations

import asyncio
import signal
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from herald.core.db import Database
from herald.subscriptions.backfill import KIND
from tests.support.processes import herald_env, herald_process, wait_exit
from tests.support.queue import wait_until

OLD = 20_000

SLOW_STEPS = """
CREATE FUNCTION test_slow_step() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_sleep(0.3); RETURN NULL; END $$;
CREATE TRIGGER test_slow_step AFTER INSERT ON list_memberships
    FOR EACH STATEMENT EXECUTE FUNCTION test_slow_step();
"""


async def job_state(db: Database) -> list[tuple[str, int]]:
    async with db.connection() as conn:
        rows = await conn.fetch("SELECT status, done FROM jobs WHERE kind = $1", KIND)
    return [(r["status"], r["done"]) for r in rows]


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_workers_enqueue_the_backfill_once_and_finish_it_through_a_kill(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    async with db.connection() as conn:
        await conn.execute("SET session_replication_role = replica")  # as before 0018
        await conn.execute(
            """
            INSERT INTO subscriptions (id, email, name, status, created_at, confirmed_at)
            SELECT gen_random_uuid(), 'old' || n || '@example.com', 'Old ' || n,
                   CASE WHEN n % 3 = 0 THEN 'pending_confirmation' ELSE 'confirmed' END,
                   timestamptz '2025-01-01' + n * interval '1 minute',
                   CASE WHEN n % 3 <> 0 THEN timestamptz '2025-06-01' END
            FROM generate_series(1, $1::integer) AS n
            """,
            OLD,
        )
        await conn.execute("SET session_replication_role = origin")
        await conn.execute(SLOW_STEPS)
    env = herald_env(
        HERALD_DATABASE_URL=database_url,
        HERALD_DATA_DIR=str(tmp_path / "data"),
        HERALD_SECRET_KEY="k" * 48,
        HERALD_BASE_URL="http://herald.test",
        HERALD_DELIVERY__LEASE_SECONDS="2",
        HERALD_DELIVERY__POLL_INTERVAL_SECONDS="0.1",
    )
    async with AsyncExitStack() as stack:
        workers = [
            await stack.enter_async_context(
                herald_process("worker", env=env, log_path=tmp_path / f"w{n}.log")
            )
            for n in range(3)
        ]

        async def under_way() -> bool:
            return any(status == "running" and done >= 5000 for status, done in await job_state(db))

        await wait_until(under_way, timeout=90, interval=0.05)
        for worker in workers:
            worker.send_signal(signal.SIGKILL)
        await asyncio.gather(*(wait_exit(worker, 10) for worker in workers))
    [(status, done)] = await job_state(db)
    assert status == "running", "held by a dead worker's lease"
    assert done < OLD, "the kill came too late to test anything"

    async with herald_process("worker", env=env, log_path=tmp_path / "last.log") as last:

        async def finished() -> bool:
            return [s for s, _ in await job_state(db)] == ["done"]

        await wait_until(finished, timeout=120, interval=0.1)
        last.send_signal(signal.SIGTERM)
        assert await wait_exit(last, 20) == 0

    async with db.connection() as conn:
        job = await conn.fetchrow("SELECT done, skipped FROM jobs WHERE kind = $1", KIND)
        wrong = await conn.fetchval(
            """
            SELECT count(*) FROM subscriptions AS s
            WHERE (SELECT count(*) FROM list_memberships AS m WHERE m.subscriber_id = s.id) <> 1
               OR NOT EXISTS (
                   SELECT 1 FROM list_memberships AS m JOIN lists AS l ON l.id = m.list_id
                   WHERE m.subscriber_id = s.id AND l.slug = 'default'
                     AND m.status = s.status AND m.source = 'backfill')
            """
        )
    assert job is not None
    assert (job["done"], job["skipped"]) == (OLD, 0), "every subscription once, none twice"
    assert wrong == 0
