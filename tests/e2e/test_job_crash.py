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

from pathlib import Path

import pytest

from herald.core.config import Settings
from herald.core.db import Database
from herald.jobs.domain import JobStatus
from herald.subscriptions.bulk import Action
from herald.subscriptions.directory import SubscriberDirectory
from herald.subscriptions.listing import ListFilter, Tab
from tests.support.bulk import copy_subscribers
from tests.support.crashed_jobs import kill_midway_then_finish, slow_steps, worker_env

SUBSCRIBERS = 20_000

SLOW_STEPS = slow_steps(after="UPDATE ON subscriptions", seconds=0.2)


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
    env = worker_env(database_url, tmp_path, lease_seconds=2)
    done = await kill_midway_then_finish(
        db, job.id, env, tmp_path, midway=SUBSCRIBERS // 4, total=SUBSCRIBERS
    )
    assert (done.done, done.skipped) == (SUBSCRIBERS, 0), "every row once, none twice"
    assert done.message == f"{SUBSCRIBERS:,} subscribers unsubscribed."
    async with db.connection() as conn:
        rows = await conn.fetch("SELECT status, count(*) AS n FROM subscriptions GROUP BY 1")
    assert {r["status"]: r["n"] for r in rows} == {
        "unsubscribed": SUBSCRIBERS,
        "pending_confirmation": 30,
    }
