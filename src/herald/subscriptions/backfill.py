"""The default-list backfill: migration 0018's *backfill* step, as a background job.

Subscriptions from before migration 0018 have no list membership: the previous
release's readers were simply "subscribed". Since 0018 a reader is mailed for a list
when both the membership and the subscription are confirmed, so each of them must
become a member of the ``default`` list with the status, confirmation and
unsubscription dates of their subscription (source ``backfill``).

Never in the migration (a million-row ``INSERT`` under its locks): a job of kind
:data:`KIND` (:mod:`herald.jobs`: leased, resumable, each step and its checkpoint in
one transaction) walks ``subscriptions`` by primary key, :data:`BATCH_SIZE` rows a
step, ``FOR SHARE`` (``backfill.sql``), and writes the missing memberships with ``ON
CONFLICT DO NOTHING``. The checkpoint is the last id of the step, so a worker killed
mid-step leaves that step undone and the next runner does it from the same place:
nothing lost, nothing twice. A subscription is only ever given the default list when it
predates 0018 (created no later than the default list itself: every reader of that time
was the default list's, also one an import or the API has added to another list since)
and is not in it yet, so the job never adds a reader who signed up for other lists, and
never undoes a choice (a membership left unsubscribed stays so).

Meanwhile both releases keep it right: the previous one's status changes reach the
trigger of 0018 (which creates the missing membership on a status change, waiting for
a step that holds the row), and a sign-up of this one gives such a subscription its
default membership first (``repository.backfill_subscriber``).

Started by itself: every worker process, at start, enqueues the job when some
subscription needs it and no such job is queued or running (:func:`enqueue_when_needed`;
one check at a time under an advisory lock, so a fleet of workers starting together
makes one job). Its last step writes the ``backfills`` row (migration 0025), and so
does a check that finds nothing missing: from then on the check is one primary-key read
(without it, finding nothing missing walks every old subscription: 15 s at 1,000,000 on
a loaded machine, at every worker start).

Measured (``tests/integration/test_default_list_backfill.py -m slow``): 1,000,000
subscriptions in 75.7 s (13,200 a second, 200 steps of 5,000) on 2 cores shared with
other work (load average 10), while two connections of old-style status changes made
35,159 confirmations and unsubscriptions against it; every subscription ended with
exactly one default membership of its status (BENCHMARKS.md, "Migrations").
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from herald.core.db import Connection, Database
from herald.core.errors import HeraldError
from herald.core.telemetry import get_logger
from herald.jobs import repository as jobs
from herald.jobs.domain import Job, Step
from herald.subscriptions import backfill_repository

log = get_logger("herald.subscriptions.backfill")

KIND = "subscriptions.default_list_backfill"
BATCH_SIZE = 5000
DESCRIPTION = "Adding the subscribers from before lists to the default list"
_START = uuid.UUID(int=0)


@dataclass(frozen=True)
class DefaultListBackfill:
    """The :class:`~herald.jobs.runner.JobHandler` of :data:`KIND`."""

    batch_size: int = BATCH_SIZE

    async def step(self, conn: Connection, job: Job) -> Step:
        after = uuid.UUID(job.position) if job.position else _START
        batch = await backfill_repository.batch(conn, after, self.batch_size)
        finished = batch.seen < self.batch_size or batch.last is None
        if finished:  # remembered with the last step, in its transaction
            await backfill_repository.finished(conn)
        return Step(
            done=batch.added,
            skipped=batch.seen - batch.added,
            position=None if finished else str(batch.last),
        )

    def summary(self, job: Job) -> str:
        return (
            f"{job.done:,} subscribers added to the default list "
            f"({job.skipped:,} in it already, or newer)."
        )


async def enqueue_when_needed(db: Database) -> Job | None:
    """Enqueue the backfill if it is needed and not already there; the job, or None.
    Never raises: a worker starts whatever this check meets."""
    try:
        async with db.transaction() as conn:
            needed, estimate = await backfill_repository.needed(conn, KIND)
            if not needed:
                return None
            job = await jobs.insert(
                conn,
                kind=KIND,
                params={},
                description=DESCRIPTION,
                total=estimate or None,
                created_by=None,
            )
    except HeraldError as exc:  # the database is unavailable: the next start checks again
        log.warning("default-list backfill: could not check", error=str(exc))
        return None
    except Exception:  # a check that must never stop a worker from starting
        log.exception("default-list backfill: the check failed")
        return None
    log.info("default-list backfill enqueued", job_id=str(job.id), estimate=estimate)
    return job


async def enqueue_at_start(db: Database) -> None:
    """A worker's start-up task: :func:`enqueue_when_needed`, its result logged."""
    await enqueue_when_needed(db)
