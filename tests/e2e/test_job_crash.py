"""A worker killed (SIGKILL) in the middle of a bulk action over 20,000 subscribers:
another worker takes the job over once its lease runs out and finishes it from its last
checkpoint, and every subscriber was acted on exactly once.

Each step acts on 1,000 rows and records its checkpoint in the same transaction, so the
kill loses at most the step in flight, which the next worker does again from the same
checkpoint. Unsubscribing twice would show: a row done again counts as "skipped"
(already unsubscribed). A test-only trigger makes every step take 0.2 s, so the kill
lands while the job is under way.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from herald.core.config import Settings
from herald.core.db import Database
from herald.jobs import repository
from herald.jobs.domain import Job, JobStatus
from herald.subscriptions.bulk import Action
from herald.subscriptions.directory import SubscriberDirectory
from herald.subscriptions.listing import ListFilter, Tab
from tests.support.bulk import copy_subscribers
from tests.support.processes import herald_env, herald_process, wait_exit
from tests.support.queue import wait_until

SUBSCRIBERS = 20_000

SLOW_STEPS = """
CREATE FUNCTION test_slow_step() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_sleep(0.2); RETURN NULL; END $$;
CREATE TRIGGER test_slow_step AFTER UPDATE ON subscriptions
    FOR EACH STATEMENT EXECUTE FUNCTION test_slow_step();
"""


async def job_now(db: Database, job: Job) -> Job:
    async with db.connection() as conn:
        found = await repository.get(conn, job.id)
    assert found is not None
    return found


@pytest.mark.slow
async def test_a_bulk_action_killed_midway_is_finished_by_another_worker_exactly_once(
    database_url: str, db: Database, settings: Settings, tmp_path: Path
) -> None:
    await copy_subscribers(db, SUBSCRIBERS)
    await copy_subscribers(db, 30, status="pending_confirmation", prefix="pending")
    async with db.connection() as conn:
        await conn.execute(SLOW_STEPS)
    directory = SubscriberDirectory(db, settings)
    job = await directory.act_on_filter(
        Action.UNSUBSCRIBE, ListFilter(Tab.CONFIRMED), budget_seconds=0
    )
    assert (job.status, job.done, job.total) == (JobStatus.QUEUED, 1000, SUBSCRIBERS)
    env = herald_env(
        HERALD_DATABASE_URL=database_url,
        HERALD_DATA_DIR=str(tmp_path / "data"),
        HERALD_SECRET_KEY="k" * 48,
        HERALD_BASE_URL="http://herald.test",
        HERALD_DELIVERY__LEASE_SECONDS="2",
        HERALD_DELIVERY__POLL_INTERVAL_SECONDS="0.1",
    )
    async with herald_process("worker", env=env, log_path=tmp_path / "a.log") as first:

        async def midway() -> bool:
            return (await job_now(db, job)).done >= SUBSCRIBERS // 4

        await wait_until(midway, timeout=90, interval=0.05)
        first.send_signal(signal.SIGKILL)
        assert await wait_exit(first, 10) == -signal.SIGKILL
    killed = await job_now(db, job)
    assert killed.status is JobStatus.RUNNING, "held by the dead worker's lease"
    assert killed.done < SUBSCRIBERS, "the kill came too late to test anything"

    async with herald_process("worker", env=env, log_path=tmp_path / "b.log") as second:

        async def finished() -> bool:
            return (await job_now(db, job)).status is JobStatus.DONE

        await wait_until(finished, timeout=120, interval=0.1)
        second.send_signal(signal.SIGTERM)
        assert await wait_exit(second, 20) == 0

    done = await job_now(db, job)
    assert (done.done, done.skipped) == (SUBSCRIBERS, 0), "every row once, none twice"
    assert done.message == f"{SUBSCRIBERS:,} subscribers unsubscribed."
    async with db.connection() as conn:
        rows = await conn.fetch("SELECT status, count(*) AS n FROM subscriptions GROUP BY 1")
    assert {r["status"]: r["n"] for r in rows} == {
        "unsubscribed": SUBSCRIBERS,
        "pending_confirmation": 30,
    }
    log = (tmp_path / "b.log").read_text(encoding="utf-8")
    assert "job finished" in log
