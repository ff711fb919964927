"""The delivery queue: exclusive claims, leases, fencing, retries, wake-ups."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from herald.core.config import EmailSettings, Settings
from herald.core.db import Database
from herald.delivery import repository
from herald.delivery.domain import Outcomes
from herald.delivery.worker import DeliveryWorker
from herald.email.postmark import PostmarkProvider
from tests.support.postmark_sink import PostmarkSink
from tests.support.queue import (
    RecordingProvider,
    claimable,
    enqueue_many,
    rows,
    statuses,
    wait_until,
)


def worker_for(
    db: Database, settings: Settings, provider: object, **delivery: object
) -> DeliveryWorker:
    config = settings.delivery.model_copy(update=delivery)
    return DeliveryWorker(
        db,
        provider,  # type: ignore[arg-type]
        config,
        dsn=settings.database_url.get_secret_value() if settings.database_url else None,
        db_settings=settings.db,
        name=f"test-{uuid.uuid4().hex[:6]}",
    )


@asynccontextmanager
async def postmark(base_url: str, timeout: float = 2.0) -> AsyncIterator[PostmarkProvider]:
    provider = PostmarkProvider(
        EmailSettings(
            provider="postmark",
            timeout_seconds=timeout,
            postmark={"base_url": base_url, "server_token": "test-token"},
        )
    )
    try:
        yield provider
    finally:
        await provider.aclose()


async def test_concurrent_claims_never_overlap_and_miss_nothing(db: Database) -> None:
    ids = await enqueue_many(db, 500)
    claimed: list[int] = []

    async def claimer() -> None:
        while True:
            async with db.connection() as conn:
                batch = await repository.claim(
                    conn, limit=7, lease_seconds=60, lease_token=uuid.uuid4(), worker="t"
                )
            if not batch:
                return
            claimed.extend(d.id for d in batch)

    await asyncio.gather(*(claimer() for _ in range(8)))
    assert sorted(claimed) == sorted(ids)
    assert len(claimed) == len(set(claimed))


@pytest.mark.parametrize(("workers", "concurrency"), [(1, 1), (4, 2)])
async def test_workers_deliver_every_row_exactly_once(
    db: Database, settings: Settings, workers: int, concurrency: int
) -> None:
    total = 1200
    await enqueue_many(db, total)
    provider = RecordingProvider(max_batch_size=10)
    stop = asyncio.Event()
    runners = [
        worker_for(db, settings, provider, batch_size=25, concurrency=concurrency)
        for _ in range(workers)
    ]
    tasks = [asyncio.create_task(r.run(stop)) for r in runners]

    async def all_sent() -> bool:
        return (await statuses(db))["sent"] == total

    await wait_until(all_sent, timeout=60)
    stop.set()
    await asyncio.gather(*tasks)
    assert len(provider.sent) == total
    assert set(provider.sent.values()) == {1}
    assert sum(r.totals.sent for r in runners) == total


async def test_notify_wakes_an_idle_worker_at_once(db: Database, settings: Settings) -> None:
    provider = RecordingProvider()
    stop = asyncio.Event()
    runner = worker_for(db, settings, provider, poll_interval_seconds=120, concurrency=1)
    task = asyncio.create_task(runner.run(stop))
    await runner.wait_listening()
    # The first row brings the claim loop to a known state: it claimed after this row was
    # committed, and next sleeps on the wake-up or the 120 s poll.
    await enqueue_many(db, 1)
    await wait_until(lambda: provider.sent.total() == 1, timeout=30, interval=0.01)
    # The second row was committed after that claim: only the NOTIFY can fetch it in time.
    await enqueue_many(db, 1)
    try:
        await wait_until(lambda: provider.sent.total() == 2, timeout=30, interval=0.01)
    finally:
        stop.set()
        await task


async def test_transient_errors_are_retried_then_delivered(
    db: Database, settings: Settings
) -> None:
    async with PostmarkSink(token="test-token") as sink, postmark(sink.base_url) as provider:
        sink.fail_next(2, status=500)
        sink.rate_limit_next(retry_after=0.1)
        [delivery_id] = await enqueue_many(db, 1)
        runner = worker_for(db, settings, provider)
        for _ in range(4):  # two 500s, a 429, then accepted: each claim once it is due
            await wait_until(lambda: claimable(db))
            await runner.run_once()
        [row] = await rows(db)
        assert row["id"] == delivery_id
        assert row["status"] == "sent"
        assert row["attempts"] == 4
        assert sink.requests["/email"] == 4


async def test_timeouts_are_retried_then_delivered(db: Database, settings: Settings) -> None:
    async with (
        PostmarkSink(token="test-token") as sink,
        postmark(sink.base_url, timeout=0.3) as provider,
    ):
        await enqueue_many(db, 1)
        runner = worker_for(db, settings, provider)
        sink.hanging = True
        report = await runner.run_once()
        assert report.retried == 1
        [row] = await rows(db)
        assert row["status"] == "queued"
        assert "no answer" in str(row["last_error"])
        sink.hanging = False
        await wait_until(lambda: claimable(db))  # past the retry backoff
        report = await runner.run_once()
        assert report.sent == 1
        [row] = await rows(db)
        assert (row["status"], row["attempts"]) == ("sent", 2)


async def test_a_422_fails_at_once(db: Database, settings: Settings) -> None:
    async with PostmarkSink(token="test-token") as sink, postmark(sink.base_url) as provider:
        sink.reject_next(error_code=300, message="Invalid 'To' address")
        await enqueue_many(db, 1)
        report = await worker_for(db, settings, provider).run_once()
        assert (report.failed, report.retried) == (1, 0)
        [row] = await rows(db)
        assert (row["status"], row["attempts"]) == ("failed", 1)
        assert "422" in str(row["last_error"]) or "300" in str(row["last_error"])
        async with db.connection() as conn:  # as if any backoff had long passed
            await conn.execute("UPDATE deliveries SET available_at = now() - interval '1 hour'")
        again = await worker_for(db, settings, provider).run_once()
        assert again.claimed == 0
        assert sink.requests["/email"] == 1


async def test_retries_stop_at_max_attempts(db: Database, settings: Settings) -> None:
    async with PostmarkSink(token="test-token") as sink, postmark(sink.base_url) as provider:
        sink.fail_next(10, status=503)
        await enqueue_many(db, 1, max_attempts=3)
        runner = worker_for(db, settings, provider)
        for _ in range(3):  # each claim once the retry is due
            await wait_until(lambda: claimable(db))
            await runner.run_once()
        [row] = await rows(db)
        assert (row["status"], row["attempts"]) == ("failed", 3)
        assert not await claimable(db)
        assert "gave up after 3 attempts" in str(row["last_error"])
        assert sink.requests["/email"] == 3


async def test_batch_results_are_per_message(db: Database, settings: Settings) -> None:
    async with PostmarkSink(token="test-token") as sink, postmark(sink.base_url) as provider:
        sink.reject_recipients({"user3@example.com"})
        await enqueue_many(db, 10)
        report = await worker_for(db, settings, provider).run_once()
        assert (report.sent, report.failed) == (9, 1)
        assert sink.requests["/email/batch"] == 1
        failed = [r for r in await rows(db) if r["status"] == "failed"]
        assert [r["recipient"] for r in failed] == ["user3@example.com"]


async def test_an_expired_lease_is_claimed_again_and_fences_the_old_holder(
    db: Database,
) -> None:
    await enqueue_many(db, 3)
    old, new = uuid.uuid4(), uuid.uuid4()
    async with db.connection() as conn:
        first = await repository.claim(
            conn, limit=10, lease_seconds=0.2, lease_token=old, worker="old"
        )
        assert len(first) == 3
        nothing = await repository.claim(
            conn, limit=10, lease_seconds=60, lease_token=new, worker="new"
        )
        assert nothing == []
        await wait_until(lambda: claimable(db))  # the 0.2 s lease ran out
        second = await repository.claim(
            conn, limit=10, lease_seconds=60, lease_token=new, worker="new"
        )
        assert sorted(d.id for d in second) == sorted(d.id for d in first)
        assert {d.attempts for d in second} == {2}
        # The old holder's late report changes nothing...
        await repository.record(conn, Outcomes(failed=[(d.id, "late") for d in first]), old)
        assert {r["status"] for r in await rows(db)} == {"sending"}
        # ...the new holder's does.
        await repository.record(conn, Outcomes(sent=[(d.id, "m") for d in second]), new)
    assert (await statuses(db))["sent"] == 3


async def test_released_rows_are_available_at_once_without_spending_an_attempt(
    db: Database,
) -> None:
    await enqueue_many(db, 2)
    lease = uuid.uuid4()
    async with db.connection() as conn:
        batch = await repository.claim(
            conn, limit=10, lease_seconds=60, lease_token=lease, worker="w"
        )
        assert await repository.release(conn, [d.id for d in batch], lease) == 2
        again = await repository.claim(
            conn, limit=10, lease_seconds=60, lease_token=uuid.uuid4(), worker="w"
        )
    assert {d.attempts for d in again} == {1}


async def test_rows_whose_lease_expired_too_often_are_failed(
    db: Database, settings: Settings
) -> None:
    await enqueue_many(db, 1, max_attempts=2)
    async with db.connection() as conn:
        await conn.execute("UPDATE deliveries SET attempts = 2, status = 'sending'")
    provider = RecordingProvider()
    report = await worker_for(db, settings, provider).run_once()
    assert report.failed == 1
    assert provider.calls == 0
    [row] = await rows(db)
    assert row["status"] == "failed"
    assert "lease expired" in str(row["last_error"])
