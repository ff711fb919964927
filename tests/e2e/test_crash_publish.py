"""Publish one issue, SIGKILL real workers mid-send again and again: nobody is lost.

Two real ``herald worker`` processes send an issue to N confirmed subscribers through a
Postmark-compatible sink that takes a while to answer. A worker caught holding a lease
(that is, between claiming a batch and recording its results) is killed with SIGKILL at
random moments, ``kills`` times, and restarted each time. The killed batches come back when
their short lease expires. At the end every confirmed subscriber must have exactly one
delivery row, ``sent``, and must have reached the sink; the issue must be ``sent``.

At-least-once means a killed batch may have reached the provider before its results were
recorded; those recipients get the message twice. With one claim loop per worker a kill
loses at most the one batch in hand, so duplicates are bounded by ``kills * batch_size``.

Knobs (environment) for bigger runs, e.g. ``bench/crash.py``:

* ``HERALD_CRASH_SUBSCRIBERS`` (default 2,500), ``HERALD_CRASH_KILLS`` (5),
  ``HERALD_CRASH_BATCH_SIZE`` (50), ``HERALD_CRASH_SINK_DELAY_MS`` (150);
* ``HERALD_CRASH_SEED``: reproduce a run (the seed is printed and in every failure message);
* ``HERALD_CRASH_REPORT``: write the measured numbers as JSON to this path.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest
from aiohttp import web

from herald.core.config import Settings
from herald.core.db import Database
from herald.delivery.domain import DeliveryKind
from herald.delivery.worker import DeliveryWorker
from herald.issues.delivery import IssueDeliveries
from herald.issues.domain import IssueContent
from herald.issues.service import IssueService
from tests.support.bulk import copy_subscribers
from tests.support.newsletters import drain, publish_now
from tests.support.postmark_sink import PostmarkSink
from tests.support.processes import herald_env, herald_process, wait_exit
from tests.support.queue import RecordingProvider, wait_until

SUBSCRIBERS = int(os.environ.get("HERALD_CRASH_SUBSCRIBERS", "2500"))
KILLS = int(os.environ.get("HERALD_CRASH_KILLS", "5"))
BATCH_SIZE = int(os.environ.get("HERALD_CRASH_BATCH_SIZE", "50"))
SINK_DELAY_MS = float(os.environ.get("HERALD_CRASH_SINK_DELAY_MS", "150"))
LEASE_SECONDS = 2.0
WORKERS = 2
TOKEN = "crash-token"

ISSUE = IssueContent(
    title="Issue 7: the crash test",
    html="<h1>Hello {{ subscriber.name }}</h1>"
    + "<p>Herald keeps sending while workers die around it.</p>" * 20,
    text="Hello {{ subscriber.name }}\n\n"
    + "Herald keeps sending while workers die around it.\n" * 20,
)


class ProviderLikeSink(PostmarkSink):
    """Takes the whole request in before its delay, like a real provider that has already
    queued the mail when a slow answer is cut off: a worker killed while waiting for the
    answer has sent its batch (the base sink reads the body after the delay, so a killed
    client's request would fail there and never count as sent)."""

    async def _handle(self, request: web.Request) -> web.Response:
        await request.read()  # cached by aiohttp: the base handler reads it again
        return await super()._handle(request)


@dataclass
class CrashReport:
    seed: int
    subscribers: int
    workers: int
    kills: int
    batch_size: int
    lease_seconds: float
    sink_delay_ms: float
    seconds: float = 0.0
    accepted_by_sink: int = 0
    recipients_reached: int = 0
    lost: int = 0
    duplicates: int = 0
    duplicate_bound: int = 0
    rows_with_retries: int = 0
    kills_mid_batch: int = 0


class Workers:
    """``WORKERS`` real worker processes, each restartable after a SIGKILL."""

    def __init__(self, env: dict[str, str], logs: Path, stack: contextlib.AsyncExitStack) -> None:
        self._env = env
        self._logs = logs
        self._stack = stack
        self._started = 0
        self.processes: dict[int, asyncio.subprocess.Process] = {}

    async def start(self) -> None:
        self._started += 1
        log_path = self._logs / f"worker-{self._started}.log"
        process = await self._stack.enter_async_context(
            herald_process("worker", env=self._env, log_path=log_path)
        )
        self.processes[process.pid] = process

    async def kill(self, pid: int) -> None:
        process = self.processes.pop(pid)
        process.send_signal(signal.SIGKILL)
        assert await wait_exit(process, 10) == -signal.SIGKILL

    async def stop_all(self) -> list[int]:
        for process in self.processes.values():
            process.send_signal(signal.SIGTERM)
        return [await wait_exit(process, 30) for process in self.processes.values()]

    def log_tail(self, lines: int = 15) -> str:
        tails = []
        for path in sorted(self._logs.glob("worker-*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            tails.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(tails)


def worker_env(database_url: str, sink: PostmarkSink, data_dir: Path) -> dict[str, str]:
    return herald_env(
        HERALD_DATABASE_URL=database_url,
        HERALD_DATA_DIR=str(data_dir),
        HERALD_SECRET_KEY="k" * 48,
        HERALD_BASE_URL="http://herald.test",
        HERALD_LOG_LEVEL="warning",
        HERALD_EMAIL__PROVIDER="postmark",
        HERALD_EMAIL__SENDER="newsletter@herald.test",
        HERALD_EMAIL__POSTMARK__BASE_URL=sink.base_url,
        HERALD_EMAIL__POSTMARK__SERVER_TOKEN=TOKEN,
        HERALD_EMAIL__TIMEOUT_SECONDS="30",
        HERALD_DELIVERY__BATCH_SIZE=str(BATCH_SIZE),
        HERALD_DELIVERY__CONCURRENCY="1",
        HERALD_DELIVERY__LEASE_SECONDS=str(LEASE_SECONDS),
        HERALD_DELIVERY__POLL_INTERVAL_SECONDS="0.2",
        HERALD_DELIVERY__RETRY_BASE_SECONDS="0.1",
        HERALD_DELIVERY__RETRY_MAX_SECONDS="1",
    )


def write_report(report: CrashReport) -> None:
    if path := os.environ.get("HERALD_CRASH_REPORT"):
        Path(path).write_text(json.dumps(asdict(report), indent=2) + "\n")


async def sent_count(db: Database, issue_id: uuid.UUID) -> int:
    async with db.connection() as conn:
        value: int = await conn.fetchval(
            "SELECT count(*) FROM deliveries WHERE issue_id = $1 AND status = 'sent'", issue_id
        )
        return value


async def busy_pids(db: Database, issue_id: uuid.UUID, alive: set[int]) -> list[int]:
    """Live workers holding an unexpired lease right now: they are mid-batch."""
    async with db.connection() as conn:
        names = await conn.fetch(
            "SELECT DISTINCT leased_by FROM deliveries"
            " WHERE issue_id = $1 AND status = 'sending' AND available_at > now()",
            issue_id,
        )
    pids = {int(str(row["leased_by"]).rpartition(":")[2]) for row in names}
    return sorted(pids & alive)


async def issue_status(db: Database, issue_id: uuid.UUID) -> str:
    async with db.connection() as conn:
        value: str = await conn.fetchval(
            "SELECT status FROM newsletter_issues WHERE id = $1", issue_id
        )
        return value


@contextlib.asynccontextmanager
async def running_workers(env: dict[str, str], logs: Path) -> AsyncIterator[Workers]:
    async with contextlib.AsyncExitStack() as stack:
        workers = Workers(env, logs, stack)
        for _ in range(WORKERS):
            await workers.start()
        yield workers


async def kill_at_random_moments(
    db: Database, issue_id: uuid.UUID, workers: Workers, rng: random.Random, report: CrashReport
) -> None:
    """Kill a mid-batch worker ``KILLS`` times, spread over the send, restarting it each time."""
    thresholds = sorted(int(rng.uniform(0.05, 0.8) * SUBSCRIBERS) for _ in range(KILLS))
    for number, threshold in enumerate(thresholds, start=1):

        async def progressed(threshold: int = threshold) -> bool:
            return await sent_count(db, issue_id) >= threshold

        await wait_until(progressed, timeout=120, interval=0.05)
        await asyncio.sleep(rng.uniform(0.0, 0.4))
        deadline = time.monotonic() + 30
        while not (busy := await busy_pids(db, issue_id, set(workers.processes))):
            if time.monotonic() > deadline:
                raise AssertionError(f"kill {number}: no worker was mid-batch within 30 s")
            await asyncio.sleep(0.01)
        victim = rng.choice(busy)
        await workers.kill(victim)
        report.kills_mid_batch += 1
        print(f"kill {number}/{KILLS}: worker {victim} after {threshold} sent")
        await workers.start()


@pytest.mark.slow
@pytest.mark.timeout(120 + SUBSCRIBERS // 40)
async def test_sigkilled_workers_lose_nobody_and_duplicate_at_most_a_batch_per_kill(
    database_url: str, db: Database, settings: Settings, tmp_path: Path
) -> None:
    seed = int(os.environ.get("HERALD_CRASH_SEED", str(random.randrange(2**32))))
    rng = random.Random(seed)
    report = CrashReport(
        seed=seed,
        subscribers=SUBSCRIBERS,
        workers=WORKERS,
        kills=KILLS,
        batch_size=BATCH_SIZE,
        lease_seconds=LEASE_SECONDS,
        sink_delay_ms=SINK_DELAY_MS,
        duplicate_bound=KILLS * BATCH_SIZE,
    )
    print(f"crash test seed={seed} (rerun with HERALD_CRASH_SEED={seed})")
    confirmed = await copy_subscribers(db, SUBSCRIBERS)
    # Addresses that must get nothing: never confirmed, or gone.
    others = await copy_subscribers(db, 30, status="pending_confirmation", prefix="pending")
    others |= await copy_subscribers(db, 30, status="unsubscribed", prefix="gone")

    service = IssueService(db, settings)
    issue_id = await service.create_draft(ISSUE, created_by=None)
    assert await publish_now(service, issue_id) == SUBSCRIBERS

    async with ProviderLikeSink(token=TOKEN, delay_ms=SINK_DELAY_MS) as sink:
        env = worker_env(database_url, sink, tmp_path / "data")
        started = time.monotonic()
        async with running_workers(env, tmp_path) as workers:
            try:
                await kill_at_random_moments(db, issue_id, workers, rng, report)

                async def issue_sent() -> bool:
                    return await issue_status(db, issue_id) == "sent"

                await wait_until(issue_sent, timeout=60 + SUBSCRIBERS / 50, interval=0.1)
            except AssertionError as exc:
                raise AssertionError(f"seed={seed}: {exc}\n{workers.log_tail()}") from exc
            report.seconds = round(time.monotonic() - started, 2)
            assert await workers.stop_all() == [0] * WORKERS, workers.log_tail()

    async with db.connection() as conn:
        wrong = await conn.fetch(
            """
            SELECT s.email, count(d.id) AS rows, array_agg(d.status) AS statuses
            FROM subscriptions AS s
            LEFT JOIN deliveries AS d ON d.subscriber_id = s.id AND d.issue_id = $1
            WHERE s.status = 'confirmed'
            GROUP BY s.email
            HAVING count(d.id) <> 1 OR bool_or(d.status IS DISTINCT FROM 'sent')
            LIMIT 10
            """,
            issue_id,
        )
        report.rows_with_retries = await conn.fetchval(
            "SELECT count(*) FROM deliveries WHERE issue_id = $1 AND attempts > 1", issue_id
        )
        stray = await conn.fetchval(
            "SELECT count(*) FROM deliveries WHERE issue_id = $1 AND subscriber_id <> ALL($2)",
            issue_id,
            list(confirmed.values()),
        )
    received = Counter(message["To"] for message in sink.messages)
    report.accepted_by_sink = sink.accepted
    report.recipients_reached = len(received.keys() & confirmed.keys())
    report.lost = len(confirmed.keys() - received.keys())
    report.duplicates = sum(n - 1 for n in received.values() if n > 1)
    print("crash test result:", json.dumps(asdict(report)))
    write_report(report)

    assert wrong == [], f"seed={seed}: subscribers without exactly one sent delivery: {wrong}"
    assert stray == 0, f"seed={seed}: deliveries for subscribers who are not confirmed"
    assert await issue_status(db, issue_id) == "sent"
    assert report.lost == 0, f"seed={seed}: {report.lost} recipients never reached the sink"
    assert not received.keys() - confirmed.keys(), f"seed={seed}: mail to strangers"
    assert not received.keys() & others.keys(), f"seed={seed}: mail to unconfirmed addresses"
    assert report.kills_mid_batch == KILLS
    assert report.duplicates <= report.duplicate_bound, (
        f"seed={seed}: {report.duplicates} duplicate sends exceed "
        f"{KILLS} kills * batch of {BATCH_SIZE}"
    )


@pytest.mark.slow
async def test_an_issue_completes_even_if_the_worker_of_its_last_batch_died_before_after_batch(
    database_url: str, db: Database, settings: Settings, tmp_path: Path
) -> None:
    await copy_subscribers(db, 30)
    service = IssueService(db, settings)
    issue_id = await service.create_draft(ISSUE, created_by=None)
    await publish_now(service, issue_id)
    # This worker records every batch but never runs its after-batch step: the database
    # is left exactly as a SIGKILL between the two leaves it.
    provider = RecordingProvider(max_batch_size=50)
    issues = IssueDeliveries(db, settings)
    dying = DeliveryWorker(
        db, provider, settings.delivery, renderers={DeliveryKind.ISSUE: issues.render}, name="dying"
    )
    await drain(dying)
    assert provider.sent.total() == 30
    assert await issue_status(db, issue_id) == "publishing"
    # A healthy `herald worker` keeps running: the issue must not stay "publishing" forever.
    env = herald_env(
        HERALD_DATABASE_URL=database_url,
        HERALD_DATA_DIR=str(tmp_path / "data"),
        HERALD_SECRET_KEY="k" * 48,
    )
    async with herald_process("worker", env=env, log_path=tmp_path / "survivor.log") as survivor:

        async def issue_sent() -> bool:
            return await issue_status(db, issue_id) == "sent"

        try:
            await wait_until(issue_sent, timeout=12, interval=0.2)
        finally:
            survivor.send_signal(signal.SIGTERM)
            await wait_exit(survivor, 30)
