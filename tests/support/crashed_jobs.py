"""A job killed mid-way with real ``herald worker`` processes (the SIGKILL tests of
``tests/e2e``): a test-only trigger that slows every step so the kill lands while the
job is under way, the workers' environment, and the scenario itself — a first worker
SIGKILLed once the job is far enough, a second one that takes it over when the lease
runs out and finishes it."""

from __future__ import annotations

import signal
import uuid
from pathlib import Path

from herald.core.db import Database
from herald.jobs import repository
from herald.jobs.domain import Job, JobStatus
from tests.support.processes import herald_env, herald_process, wait_exit
from tests.support.queue import wait_until


def slow_steps(*, after: str, seconds: float) -> str:
    """SQL for a trigger sleeping ``seconds`` after each ``after`` statement (such as
    ``INSERT ON subscriptions``): one per step of a job writing there."""
    return f"""
CREATE FUNCTION test_slow_step() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_sleep({seconds}); RETURN NULL; END $$;
CREATE TRIGGER test_slow_step AFTER {after}
    FOR EACH STATEMENT EXECUTE FUNCTION test_slow_step();
"""


def worker_env(database_url: str, tmp_path: Path, *, lease_seconds: int) -> dict[str, str]:
    """Workers on ``database_url`` whose job leases run out after ``lease_seconds``."""
    return herald_env(
        HERALD_DATABASE_URL=database_url,
        HERALD_DATA_DIR=str(tmp_path / "data"),
        HERALD_SECRET_KEY="k" * 48,
        HERALD_BASE_URL="http://herald.test",
        HERALD_DELIVERY__LEASE_SECONDS=str(lease_seconds),
        HERALD_DELIVERY__POLL_INTERVAL_SECONDS="0.1",
    )


async def job_now(db: Database, job_id: uuid.UUID) -> Job:
    async with db.connection() as conn:
        found = await repository.get(conn, job_id)
    assert found is not None
    return found


async def kill_midway_then_finish(
    db: Database,
    job_id: uuid.UUID,
    env: dict[str, str],
    tmp_path: Path,
    *,
    midway: int,
    total: int,
) -> Job:
    """A worker SIGKILLed once the job has ``done >= midway`` (of ``total``), then a
    second worker (log ``b.log``) that finishes it and exits 0 on SIGTERM: the job as it
    ended."""
    async with herald_process("worker", env=env, log_path=tmp_path / "a.log") as first:

        async def far_enough() -> bool:
            return (await job_now(db, job_id)).done >= midway

        await wait_until(far_enough, timeout=120, interval=0.05)
        first.send_signal(signal.SIGKILL)
        assert await wait_exit(first, 10) == -signal.SIGKILL
    killed = await job_now(db, job_id)
    assert killed.status is JobStatus.RUNNING, "held by the dead worker's lease"
    assert killed.done < total, "the kill came too late to test anything"

    async with herald_process("worker", env=env, log_path=tmp_path / "b.log") as second:

        async def finished() -> bool:
            return (await job_now(db, job_id)).status is JobStatus.DONE

        await wait_until(finished, timeout=180, interval=0.1)
        second.send_signal(signal.SIGTERM)
        assert await wait_exit(second, 30) == 0
    assert "job finished" in (tmp_path / "b.log").read_text(encoding="utf-8")
    return await job_now(db, job_id)
