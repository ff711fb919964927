"""Background jobs (jobs/runner.py) with the bulk action over a filter as the job: each
step and its checkpoint commit together, so a step happens exactly once whether its
runner finishes, is killed mid-step, loses its lease or sees the job cancelled."""

from __future__ import annotations

import asyncio
import html
import re
import uuid

import httpx
import pytest

from herald.composition import housekeeping
from herald.core.config import Settings
from herald.core.db import Connection, Database
from herald.jobs import repository, runner
from herald.jobs.domain import Job, JobStatus, Step
from herald.jobs.runner import JobRunner, run_now
from herald.subscriptions import bulk
from herald.subscriptions.bulk import Action, BulkActionJob
from herald.subscriptions.directory import SubscriberDirectory
from herald.subscriptions.listing import ListFilter, Tab
from tests.support.newsletters import CSRF, add_subscribers

pytestmark = pytest.mark.usefixtures("small_batches")


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bulk, "BATCH_SIZE", 7)


async def statuses(db: Database) -> dict[str, int]:
    async with db.connection() as conn:
        rows = await conn.fetch("SELECT status, count(*) AS n FROM subscriptions GROUP BY status")
    return {r["status"]: r["n"] for r in rows}


async def confirmations_per_subscriber(db: Database) -> dict[uuid.UUID, int]:
    async with db.connection() as conn:
        rows = await conn.fetch(
            "SELECT subscriber_id, count(*) AS n FROM deliveries"
            " WHERE kind = 'confirmation' GROUP BY subscriber_id"
        )
    return {r["subscriber_id"]: r["n"] for r in rows}


async def get(db: Database, job_id: uuid.UUID) -> Job:
    async with db.connection() as conn:
        job = await repository.get(conn, job_id)
    assert job is not None
    return job


async def expire_lease(db: Database, job_id: uuid.UUID) -> None:
    async with db.connection() as conn:
        await conn.execute(
            "UPDATE jobs SET leased_until = now() - interval '1 second' WHERE id = $1", job_id
        )


async def started(db: Database, settings: Settings, action: Action, where: ListFilter) -> Job:
    """A job started from the admin with no time to run in the request."""
    directory = SubscriberDirectory(db, settings)
    job = await directory.act_on_filter(action, where, budget_seconds=0)
    assert job.status is JobStatus.QUEUED, "one step, then left to the workers"
    return job


async def test_a_big_job_goes_on_in_a_worker_from_its_checkpoint(
    db: Database, settings: Settings
) -> None:
    await add_subscribers(db, 30)
    await add_subscribers(db, 5, status="unsubscribed", prefix="gone")
    job = await started(db, settings, Action.UNSUBSCRIBE, ListFilter(Tab.CONFIRMED))
    assert (job.done, job.total, job.percent) == (7, 30, 23)
    assert job.position is not None
    assert (await statuses(db))["unsubscribed"] == 5 + 7

    worker = JobRunner(db, {bulk.KIND: BulkActionJob(settings)}, lease_seconds=5)
    assert await worker.run_one()
    done = await get(db, job.id)
    assert (done.status, done.done, done.skipped) == (JobStatus.DONE, 30, 0)
    assert done.message == "30 subscribers unsubscribed."
    assert done.finished_at is not None
    assert await statuses(db) == {"unsubscribed": 35}
    assert not await worker.run_one(), "nothing left to claim"


async def test_subscribers_who_arrive_after_the_start_are_left_alone(
    db: Database, settings: Settings
) -> None:
    await add_subscribers(db, 10)
    job = await started(db, settings, Action.DELETE, ListFilter(Tab.ALL))
    await add_subscribers(db, 3, prefix="late")
    await JobRunner(db, {bulk.KIND: BulkActionJob(settings)}, lease_seconds=5).run_one()
    assert (await get(db, job.id)).done == 10
    assert await statuses(db) == {"confirmed": 3}


class DiesMidStep:
    """A handler whose process "dies" in its own second step, after acting, before the
    checkpoint: the step's transaction is never committed (as when a process is killed)."""

    def __init__(self, inner: BulkActionJob) -> None:
        self.inner = inner
        self.steps = 0

    async def step(self, conn: Connection, job: Job) -> Step:
        self.steps += 1
        step = await self.inner.step(conn, job)
        if self.steps == 2:
            raise asyncio.CancelledError  # what a killed task sees; the transaction rolls back
        return step

    def summary(self, job: Job) -> str:
        return self.inner.summary(job)


async def test_a_runner_killed_mid_step_leaves_the_step_undone_and_it_resumes_once(
    db: Database, settings: Settings
) -> None:
    pending = await add_subscribers(db, 20, status="pending_confirmation")
    job = await started(db, settings, Action.RESEND, ListFilter(Tab.PENDING))
    assert job.done == 7
    dying = JobRunner(db, {bulk.KIND: DiesMidStep(BulkActionJob(settings))}, lease_seconds=5)
    with pytest.raises(asyncio.CancelledError):
        await dying.run_one()
    # Its first step committed (7 more emails); its second rolled back. The job is
    # "running" under a dead lease: nobody takes it until the lease runs out.
    assert len(await confirmations_per_subscriber(db)) == 14
    dead = await get(db, job.id)
    assert (dead.done, dead.attempts) == (14, 0), "its claim did a step: not a failed attempt"
    healthy = JobRunner(db, {bulk.KIND: BulkActionJob(settings)}, lease_seconds=5)
    assert not await healthy.run_one()
    await expire_lease(db, job.id)
    assert await healthy.run_one()
    done = await get(db, job.id)
    assert (done.status, done.done) == (JobStatus.DONE, 20)
    assert await confirmations_per_subscriber(db) == dict.fromkeys(pending, 1), "exactly once"


class TakenOverMidStep:
    """A handler during whose step another runner takes the job over (its lease ran out)."""

    def __init__(self, db: Database, inner: BulkActionJob) -> None:
        self.db = db
        self.inner = inner

    async def step(self, conn: Connection, job: Job) -> Step:
        step = await self.inner.step(conn, job)
        await expire_lease(self.db, job.id)
        async with self.db.connection() as other:
            assert await repository.claim_one(other, job.id, uuid.uuid4(), 5) is not None
        return step

    def summary(self, job: Job) -> str:
        return self.inner.summary(job)


async def test_a_runner_that_lost_its_lease_cannot_record_its_step(
    db: Database, settings: Settings
) -> None:
    await add_subscribers(db, 20)
    job = await started(db, settings, Action.UNSUBSCRIBE, ListFilter(Tab.ALL))
    slow = JobRunner(
        db, {bulk.KIND: TakenOverMidStep(db, BulkActionJob(settings))}, lease_seconds=5
    )
    assert await slow.run_one()
    after = await get(db, job.id)
    assert after.status is JobStatus.RUNNING, "the other runner holds it"
    assert after.done == 7, "the fenced checkpoint failed: the step was rolled back"
    assert (await statuses(db))["unsubscribed"] == 7


async def test_a_cancelled_job_stops_and_keeps_what_it_did(
    db: Database, settings: Settings
) -> None:
    await add_subscribers(db, 20)
    directory = SubscriberDirectory(db, settings)
    job = await started(db, settings, Action.UNSUBSCRIBE, ListFilter(Tab.ALL))
    stopped = await directory.cancel_job(job.id)
    assert stopped.status is JobStatus.CANCELLED
    assert stopped.message == "Stopped: 7 done before it was stopped."
    assert not await JobRunner(db, {bulk.KIND: BulkActionJob(settings)}, lease_seconds=5).run_one()
    assert (await statuses(db))["unsubscribed"] == 7
    with pytest.raises(Exception, match="already finished"):
        await directory.cancel_job(job.id)


async def test_a_step_that_fails_fails_the_job_with_its_reason(
    db: Database, settings: Settings
) -> None:
    class Broken:
        async def step(self, conn: Connection, job: Job) -> Step:  # noqa: ARG002
            raise RuntimeError("the template is broken")

        def summary(self, job: Job) -> str:  # noqa: ARG002
            return "never"

    async with db.connection() as conn:
        job = await repository.insert(
            conn, kind="broken", params={}, description="Breaking", total=None, created_by=None
        )
        unknown = await repository.insert(
            conn, kind="from.the.future", params={}, description="?", total=None, created_by=None
        )
    ended = await run_now(db, job, Broken(), budget_seconds=5, lease_seconds=5)
    assert (ended.status, ended.message) == (JobStatus.FAILED, "failed: the template is broken")
    assert await JobRunner(db, {}, lease_seconds=5).run_one()
    assert (await get(db, unknown.id)).message == "unknown job kind 'from.the.future'"


async def test_a_job_that_never_finishes_a_step_is_given_up(
    db: Database, settings: Settings
) -> None:
    await add_subscribers(db, 20)
    job = await started(db, settings, Action.UNSUBSCRIBE, ListFilter(Tab.ALL))
    async with db.connection() as conn:
        await conn.execute(
            "UPDATE jobs SET attempts = $2 WHERE id = $1", job.id, runner.MAX_ATTEMPTS
        )
    assert await JobRunner(db, {bulk.KIND: BulkActionJob(settings)}, lease_seconds=5).run_one()
    failed = await get(db, job.id)
    assert failed.status is JobStatus.FAILED
    assert failed.message == "stopped after 5 attempts in a row that did no step"


async def test_finished_jobs_are_cleaned_up_after_thirty_days(
    db: Database, settings: Settings
) -> None:
    await add_subscribers(db, 3)
    directory = SubscriberDirectory(db, settings)
    old = await directory.act_on_filter(Action.DELETE, ListFilter(Tab.ALL), budget_seconds=None)
    new = await directory.act_on_filter(Action.DELETE, ListFilter(Tab.ALL), budget_seconds=None)
    async with db.connection() as conn:
        await conn.execute(
            "UPDATE jobs SET finished_at = now() - interval '31 days' WHERE id = $1", old.id
        )
    assert (await housekeeping.run_once(db, settings))["old_jobs_deleted"] == 1
    async with db.connection() as conn:
        assert await repository.get(conn, old.id) is None
        assert await repository.get(conn, new.id) is not None


async def test_the_subscribers_page_shows_a_running_job_and_can_stop_it(
    admin_client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bulk, "INLINE_SECONDS", 0.0)
    await add_subscribers(db, 20)
    page = await admin_client.get("/admin/subscribers")
    csrf = CSRF.search(page.text)
    assert csrf is not None
    form = {"csrf_token": csrf.group(1), "action": "unsubscribe", "scope": "filter"}
    asked = await admin_client.post("/admin/subscribers/bulk", data=form)
    assert asked.status_code == 200, "a whole-filter action asks first"
    done = await admin_client.post("/admin/subscribers/bulk", data={**form, "confirm": "yes"})
    assert done.status_code == 303
    listing = await admin_client.get(done.headers["location"])
    text = html.unescape(listing.text)
    assert (
        "Unsubscribing every subscriber goes on in the background: 7 done so far. "
        "Its progress is shown above the list." in text
    )
    [job_id] = re.findall(r'data-job-id="([0-9a-f-]{36})"', listing.text)
    assert "7 of 20 done, waiting for a worker" in text
    assert f'<form action="/admin/subscribers/jobs/{job_id}/cancel" method="post">' in text
    assert '<input type="hidden" name="back" value="/admin/subscribers">' in text
    assert 'src="/static/jobs.js"' in listing.text

    stop = await admin_client.post(
        f"/admin/subscribers/jobs/{job_id}/cancel",
        data={"csrf_token": csrf.group(1), "back": "/admin/subscribers?status=confirmed"},
    )
    assert stop.headers["location"] == "/admin/subscribers?status=confirmed"
    after = html.unescape((await admin_client.get(stop.headers["location"])).text)
    assert "Stopped: 7 done before it was stopped." in after
    again = await admin_client.post(
        f"/admin/subscribers/jobs/{job_id}/cancel",
        data={"csrf_token": csrf.group(1), "back": "https://evil.example/"},
    )
    assert again.headers["location"] == "/admin/subscribers", "no open redirect"
    unknown = await admin_client.post(
        f"/admin/subscribers/jobs/{uuid.uuid4()}/cancel", data={"csrf_token": csrf.group(1)}
    )
    assert unknown.status_code == 303


async def test_a_draining_worker_releases_its_job_between_steps(
    db: Database, settings: Settings
) -> None:
    await add_subscribers(db, 20)
    job = await started(db, settings, Action.UNSUBSCRIBE, ListFilter(Tab.ALL))
    stop = asyncio.Event()

    class StopsDuringItsStep:
        async def step(self, conn: Connection, job: Job) -> Step:
            stop.set()  # SIGTERM arrives while this step runs: it finishes, then no more
            return await BulkActionJob(settings).step(conn, job)

        def summary(self, job: Job) -> str:
            return BulkActionJob(settings).summary(job)

    assert await JobRunner(db, {bulk.KIND: StopsDuringItsStep()}, lease_seconds=5).run_one(stop)
    released = await get(db, job.id)
    assert (released.status, released.done, released.attempts) == (JobStatus.QUEUED, 14, 0)
    assert await JobRunner(db, {bulk.KIND: BulkActionJob(settings)}, lease_seconds=5).run_one()
    assert (await get(db, job.id)).status is JobStatus.DONE


async def test_runners_racing_for_jobs_each_take_a_different_one(
    db: Database, settings: Settings
) -> None:
    await add_subscribers(db, 40)
    first = await started(db, settings, Action.UNSUBSCRIBE, ListFilter(Tab.ALL))
    second = await started(db, settings, Action.RESEND, ListFilter(Tab.ALL))
    runners = [
        JobRunner(db, {bulk.KIND: BulkActionJob(settings)}, lease_seconds=5) for _ in range(6)
    ]
    ran = await asyncio.gather(*(runner.run_one() for runner in runners))
    assert sorted(ran) == [False] * 4 + [True] * 2, "SKIP LOCKED: one runner per job"
    done = [await get(db, first.id), await get(db, second.id)]
    assert [job.status for job in done] == [JobStatus.DONE] * 2
    assert done[0].done == 40, "every row unsubscribed once"
    assert (done[1].done, done[1].skipped) == (0, 40), "then nobody pending to resend to"
