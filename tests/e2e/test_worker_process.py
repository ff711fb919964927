"""A real ``herald worker`` process: killed mid-batch, and asked to stop mid-batch."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from herald.core.config import Settings
from herald.core.db import Database
from tests.support.postmark_sink import PostmarkSink
from tests.support.processes import herald_env, herald_process, wait_exit
from tests.support.queue import enqueue_many, rows, statuses, wait_until


def worker_env(database_url: str, sink: PostmarkSink, **delivery: str) -> dict[str, str]:
    env = herald_env(
        HERALD_DATABASE_URL=database_url,
        HERALD_EMAIL__PROVIDER="postmark",
        HERALD_EMAIL__POSTMARK__BASE_URL=sink.base_url,
        HERALD_EMAIL__POSTMARK__SERVER_TOKEN="t",
        HERALD_EMAIL__TIMEOUT_SECONDS="30",
        HERALD_DELIVERY__POLL_INTERVAL_SECONDS="0.1",
        HERALD_DELIVERY__RETRY_BASE_SECONDS="0.1",
    )
    env.update({f"HERALD_DELIVERY__{k.upper()}": v for k, v in delivery.items()})
    return env


async def all_leased(db: Database, count: int) -> bool:
    return (await statuses(db))["sending"] == count


async def test_rows_of_a_killed_worker_are_delivered_by_another_after_the_lease(
    database_url: str, db: Database, settings: Settings, tmp_path: Path
) -> None:
    await enqueue_many(db, 20)
    async with PostmarkSink(token="t") as sink:
        sink.hanging = True  # the first worker's batch never gets an answer
        env = worker_env(database_url, sink, lease_seconds="3", batch_size="20")
        async with herald_process("worker", env=env, log_path=tmp_path / "a.log") as first:
            await wait_until(lambda: all_leased(db, 20), timeout=30)
            first.send_signal(signal.SIGKILL)
            assert await wait_exit(first, 10) == -signal.SIGKILL
        assert (await statuses(db))["sending"] == 20, "the killed worker's rows stay leased"
        sink.hanging = False
        async with herald_process("worker", env=env, log_path=tmp_path / "b.log") as second:

            async def delivered() -> bool:
                return (await statuses(db))["sent"] == 20

            await wait_until(delivered, timeout=30)
            second.send_signal(signal.SIGTERM)
            assert await wait_exit(second, 15) == 0
    assert {r["attempts"] for r in await rows(db)} == {2}
    recipients = {m["To"] for m in sink.messages}
    assert recipients == {f"user{i}@example.com" for i in range(20)}


async def test_sigterm_lets_the_batch_in_hand_finish_then_exits_0(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    await enqueue_many(db, 10)
    async with PostmarkSink(token="t", delay_ms=1500) as sink:
        env = worker_env(database_url, sink, drain_seconds="10", batch_size="10")
        async with herald_process("worker", env=env, log_path=tmp_path / "w.log") as worker:
            await wait_until(lambda: all_leased(db, 10), timeout=30)
            worker.send_signal(signal.SIGTERM)
            assert await wait_exit(worker, 20) == 0
    assert (await statuses(db)) == {"sent": 10}


async def test_sigterm_releases_a_batch_that_cannot_finish_within_the_drain_budget(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    await enqueue_many(db, 10)
    async with PostmarkSink(token="t") as sink:
        sink.hanging = True
        env = worker_env(database_url, sink, drain_seconds="0.5", batch_size="10")
        async with herald_process("worker", env=env, log_path=tmp_path / "w.log") as worker:
            await wait_until(lambda: all_leased(db, 10), timeout=30)
            worker.send_signal(signal.SIGTERM)
            assert await wait_exit(worker, 20) == 0
        after = await rows(db)
        assert {r["status"] for r in after} == {"queued"}
        assert {r["attempts"] for r in after} == {0}, "a released attempt is not counted"
        assert {r["leased_by"] for r in after} == {None}
        await asyncio.sleep(0)


async def test_sigterm_while_still_starting_exits_0(database_url: str, tmp_path: Path) -> None:
    # A process manager may stop a worker it has just started (bench R1 restarts workers
    # near the end of a send): the contract's exit 0 holds even before the event loop runs.
    env = herald_env(
        HERALD_DATABASE_URL=database_url,
        HERALD_DATA_DIR=str(tmp_path / "data"),
        HERALD_SECRET_KEY="k" * 48,
    )
    for delay in (0.1, 0.3, 0.5, 0.8, 1.2):
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "herald", "worker", env=env
        )
        await asyncio.sleep(delay)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0, f"after {delay} s"


async def test_a_worker_lowers_its_cpu_priority_when_configured(
    database_url: str, tmp_path: Path
) -> None:
    env = herald_env(
        HERALD_DATABASE_URL=database_url,
        HERALD_DATA_DIR=str(tmp_path / "data"),
        HERALD_SECRET_KEY="k" * 48,
        HERALD_DELIVERY__NICE="7",
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "herald", "worker", env=env
    )

    try:

        async def lowered() -> bool:
            return os.getpriority(os.PRIO_PROCESS, process.pid) == 7

        await wait_until(lowered, timeout=20, interval=0.1)
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0


async def test_a_slow_provider_never_gets_a_batch_twice_from_live_workers(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    # 30 single sends of 1 s each, five at a time: the batch is in hand ~6 s, more than
    # twice its 2.5 s lease. The worker that holds it is alive, so it keeps the claim
    # (heartbeat); before, the second worker claimed it again at every expiry.
    await enqueue_many(db, 30)
    async with PostmarkSink(token="t", delay_ms=1000, count_recipients=True) as sink:
        env = worker_env(
            database_url,
            sink,
            lease_seconds="2.5",
            batch_size="30",
            send_concurrency="5",
        )
        env["HERALD_EMAIL__POSTMARK__BATCH"] = "false"
        async with (
            herald_process("worker", env=env, log_path=tmp_path / "a.log") as first,
            herald_process("worker", env=env, log_path=tmp_path / "b.log") as second,
        ):

            async def delivered() -> bool:
                return (await statuses(db))["sent"] == 30

            await wait_until(delivered, timeout=90)
            for worker in (first, second):
                worker.send_signal(signal.SIGTERM)
            assert await wait_exit(first, 20) == 0
            assert await wait_exit(second, 20) == 0
    assert len(sink.receipts) == 30
    assert max(sink.receipts.values()) == 1, f"sent twice: {sink.receipts.most_common(3)}"
    assert {r["attempts"] for r in await rows(db)} == {1}


async def test_sigterm_past_the_drain_budget_records_what_the_provider_accepted(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    # One batch of 40 single sends, two at a time, 0.3 s each: the drain budget (1 s)
    # ends mid-batch. The messages accepted by then must be recorded as sent, not
    # released (which sent them again); only the two in flight at the cut are unknown.
    await enqueue_many(db, 40)
    concurrency = 2
    async with PostmarkSink(token="t", delay_ms=300, count_recipients=True) as sink:
        env = worker_env(
            database_url,
            sink,
            drain_seconds="1",
            batch_size="40",
            send_concurrency=str(concurrency),
            lease_seconds="30",
        )
        env["HERALD_EMAIL__POSTMARK__BATCH"] = "false"
        async with herald_process("worker", env=env, log_path=tmp_path / "a.log") as worker:

            async def some_accepted() -> bool:
                return sink.accepted >= 4

            await wait_until(some_accepted, timeout=30)
            worker.send_signal(signal.SIGTERM)
            assert await wait_exit(worker, 20) == 0

        async def settled() -> bool:
            return sink.in_flight == 0

        await wait_until(settled, timeout=10)
        after = await statuses(db)
        accepted = sink.accepted
        assert after["sent"] > 0, "nothing recorded: every accepted message was released"
        assert after["sent"] >= accepted - concurrency
        assert after["sent"] + after["queued"] == 40
        sink.delay_seconds = 0
        async with herald_process("worker", env=env, log_path=tmp_path / "b.log") as worker:

            async def delivered() -> bool:
                return (await statuses(db))["sent"] == 40

            await wait_until(delivered, timeout=30)
            worker.send_signal(signal.SIGTERM)
            assert await wait_exit(worker, 20) == 0
    assert len(sink.receipts) == 40
    assert sum(sink.receipts.values()) <= 40 + concurrency
