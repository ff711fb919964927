"""Running background jobs: step by step, each step and its checkpoint in one
transaction, under a lease.

A job's handler does one step in the transaction it is given (say, unsubscribe the next
1,000 subscribers of a filter) and returns where the next step starts; the runner
writes that checkpoint in the same transaction, fenced by its lease token. So every
step happens exactly once: a runner killed mid-step rolls the step back, and the job,
its lease run out, is taken over from its last checkpoint by any other runner. A
cancelled job (or one whose lease another runner took) fails the fenced write, and the
step rolls back.

Where jobs run:
- :func:`run_now` — the web request that started a job runs it itself for a short
  time budget, so a small job is finished (and its result flashed) before the redirect;
  a big one is released to the queue with its progress kept.
- :class:`JobRunner` — a loop in every worker process (``herald worker``, ``up``) that
  claims queued jobs, and jobs whose runner died, oldest first.

A step that raises :class:`~herald.core.errors.Unavailable` (the database went away)
releases the job for a later retry; any other error fails it for good, with the error
logged and its message kept: a step that failed once fails again. After
:data:`MAX_ATTEMPTS` claims in a row without a step done (a job that kills its runner
every time) it is failed too; a drain or a spent time budget does not count.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping
from typing import Protocol

from herald.core import live
from herald.core.db import Connection, Database
from herald.core.errors import Unavailable
from herald.core.telemetry import get_logger
from herald.core.waiting import sleep_or_stop
from herald.jobs import repository
from herald.jobs.domain import Job, JobStatus, Step

log = get_logger("herald.jobs")

POLL_SECONDS = 2.0
MAX_ATTEMPTS = 5
PROGRESS_EVERY_SECONDS = 1.0  # live progress events, at most this often per job
MAX_MESSAGE = 300  # characters of an outcome kept (and sent in a live event)


class JobHandler(Protocol):
    """One kind of job."""

    async def step(self, conn: Connection, job: Job) -> Step:
        """Do the next step from ``job.position``, inside ``conn``'s transaction."""
        ...

    def summary(self, job: Job) -> str:
        """The outcome of a finished job, for people (a flash, the job list)."""
        ...


class _Lost(Exception):
    """The fenced checkpoint touched no row: cancelled, or the lease is someone else's."""


async def run_now(
    db: Database, job: Job, handler: JobHandler, *, budget_seconds: float, lease_seconds: float
) -> Job:
    """Run ``job`` (just created) here for up to ``budget_seconds``; if unfinished by
    then, release it to the workers. The job as it stands afterwards."""
    token = uuid.uuid4()
    async with db.transaction() as conn:
        claimed = await repository.claim_one(conn, job.id, token, lease_seconds)
    if claimed is None:  # a worker was faster
        return await _current(db, job)
    return await _run(
        db, claimed, handler, token, lease_seconds, deadline=time.monotonic() + budget_seconds
    )


class JobRunner:
    """Claims and runs jobs until ``stop`` is set (then releases the one in hand)."""

    def __init__(
        self, db: Database, handlers: Mapping[str, JobHandler], *, lease_seconds: float
    ) -> None:
        self._db = db
        self._handlers = dict(handlers)
        self._lease_seconds = lease_seconds

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                ran = await self.run_one(stop)
            except Unavailable as exc:
                log.warning("jobs: database unavailable", error=str(exc))
                ran = False
            if not ran:
                await sleep_or_stop(stop, POLL_SECONDS)

    async def run_one(self, stop: asyncio.Event | None = None) -> bool:
        """Claim the oldest runnable job and run it (until done, or ``stop``); False if
        there was none."""
        token = uuid.uuid4()
        async with self._db.transaction() as conn:
            job = await repository.claim_next(conn, token, self._lease_seconds)
        if job is None:
            return False
        handler = self._handlers.get(job.kind)
        if handler is None:
            await self._finish(job, token, JobStatus.FAILED, f"unknown job kind {job.kind!r}")
            return True
        if job.attempts > MAX_ATTEMPTS:
            message = f"stopped after {MAX_ATTEMPTS} attempts in a row that did no step"
            await self._finish(job, token, JobStatus.FAILED, message)
            return True
        await _run(self._db, job, handler, token, self._lease_seconds, stop=stop)
        return True

    async def _finish(self, job: Job, token: uuid.UUID, status: JobStatus, message: str) -> None:
        async with self._db.transaction() as conn:
            await repository.finish(conn, job.id, token, status, message)
        log.warning("job failed", job_id=str(job.id), kind=job.kind, reason=message)


async def _run(
    db: Database,
    job: Job,
    handler: JobHandler,
    token: uuid.UUID,
    lease_seconds: float,
    *,
    deadline: float | None = None,
    stop: asyncio.Event | None = None,
) -> Job:
    announced = 0.0
    while True:
        try:
            async with db.transaction() as conn:
                step = await handler.step(conn, job)
                job = await _checkpoint(conn, job, token, step, lease_seconds)
        except _Lost:
            log.info("job step rolled back: cancelled or taken over", job_id=str(job.id))
            return await _current(db, job)
        except Unavailable:
            await _release(db, job, token)
            raise
        except Exception as exc:
            log.exception("job step failed", job_id=str(job.id), kind=job.kind)
            reason = f"failed: {exc}"[:MAX_MESSAGE]
            return await _end(db, job, token, JobStatus.FAILED, reason)
        if step.position is None:
            outcome = step.message or handler.summary(job)
            return await _end(db, job, token, JobStatus.DONE, outcome)
        if time.monotonic() - announced >= PROGRESS_EVERY_SECONDS:
            announced = time.monotonic()
            await _announce(db, "job.progress", job)
        if (stop is not None and stop.is_set()) or (
            deadline is not None and time.monotonic() >= deadline
        ):
            return await _release(db, job, token)


async def _checkpoint(
    conn: Connection, job: Job, token: uuid.UUID, step: Step, lease_seconds: float
) -> Job:
    """Record ``step`` in its own transaction; :class:`_Lost` (rolling it back) if the
    lease is no longer ours or the job was cancelled."""
    advanced = await repository.advance(
        conn,
        job.id,
        token,
        position=step.position,
        done=step.done,
        skipped=step.skipped,
        lease_seconds=lease_seconds,
    )
    if advanced is None:
        raise _Lost
    return advanced


async def _end(db: Database, job: Job, token: uuid.UUID, status: JobStatus, message: str) -> Job:
    async with db.transaction() as conn:
        ended = await repository.finish(conn, job.id, token, status, message)
    ended = ended or await _current(db, job)
    await _announce(db, "job.finished", ended)
    log.info("job finished", job_id=str(job.id), kind=job.kind, status=ended.status.value)
    return ended


async def _release(db: Database, job: Job, token: uuid.UUID) -> Job:
    async with db.transaction() as conn:
        released = await repository.release(conn, job.id, token)
    return released or await _current(db, job)


async def _current(db: Database, job: Job) -> Job:
    async with db.connection() as conn:
        return await repository.get(conn, job.id) or job


async def _announce(db: Database, kind: str, job: Job) -> None:
    """A live event for the admin pages (``/admin/live``)."""
    payload = live.event(
        kind,
        job_id=job.id,
        job_kind=job.kind,
        status=job.status.value,
        done=job.done,
        skipped=job.skipped,
        total=job.total,
        message=(job.message or "")[:MAX_MESSAGE] or None,
    )
    async with db.connection() as conn:
        await live.notify(conn, payload)
