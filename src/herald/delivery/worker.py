"""The delivery worker: claim a batch, send it, record what happened.

At-least-once by construction: a row is only marked ``sent`` after the provider
accepted it, and a row whose worker died comes back when its lease expires.
Several workers (tasks in one process, processes on several machines) share
the queue through ``FOR UPDATE SKIP LOCKED``; every write is fenced by the
lease token of the claim, so a worker that lost its lease cannot overwrite the
row's newer state.

Workers sleep on ``LISTEN herald_deliveries`` (a trigger notifies at commit of
every enqueue) with a polling fallback, so a confirmation email leaves within
milliseconds and nothing is stranded if a notification is missed.
``DeliveryWorker.listening`` is true while the LISTEN connection is established
(false once it is lost, true again after a reconnect; never true without a
``dsn``) and ``wait_listening`` waits for it, like the progress hub's: code that
relies on the wake-up (tests) waits on that instead of sleeping. ``dsn`` is Postgres
itself (``HERALD_DIRECT_DATABASE_URL`` when set): a pooler in transaction mode never
delivers a notification.

A batch in hand keeps its lease by heartbeat for as long as its worker is alive
(:mod:`herald.delivery.batch`), however slow the provider.

Shutdown (``stop`` set): loops stop claiming; a batch in hand gets
``drain_seconds`` to finish, after which the results known so far are recorded
and its unsent rows are released back to the queue without counting an attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid

import asyncpg

from herald.core.config import DatabaseSettings, DeliverySettings
from herald.core.db import Database, connect
from herald.core.errors import Unavailable
from herald.core.telemetry import get_logger
from herald.core.waiting import sleep_or_stop, wait_any
from herald.delivery import metrics, repository
from herald.delivery.batch import (
    AfterBatch,
    Batch,
    BatchRunner,
    Counters,
    Refusals,
    Rendered,
    Renderer,
    render_stored_batch,
    stop_task,
)
from herald.email.message import EmailProvider

log = get_logger("herald.delivery")

CHANNEL = "herald_deliveries"
RATE_BUCKET = "provider-sends"

# Features plug their renderers into the worker through these names.
__all__ = [
    "CHANNEL",
    "BatchReport",
    "DeliveryWorker",
    "Refusals",
    "Rendered",
    "Renderer",
    "render_stored_batch",
]

BatchReport = Counters


class DeliveryWorker:
    def __init__(
        self,
        db: Database,
        provider: EmailProvider,
        settings: DeliverySettings,
        *,
        dsn: str | None = None,
        db_settings: DatabaseSettings | None = None,
        renderers: dict[str, Renderer] | None = None,
        after_batch: AfterBatch | None = None,
        on_refused: Refusals | None = None,
        name: str | None = None,
    ) -> None:
        self._db = db
        self._settings = settings
        self._dsn = dsn
        self._db_settings = db_settings or DatabaseSettings()
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self._wakeups: list[asyncio.Event] = []
        self._listening = asyncio.Event()
        self._runner = BatchRunner(
            db,
            provider,
            settings,
            renderers or {},
            after_batch,
            worker=self.name,
            on_refused=on_refused,
        )
        self.totals = Counters()

    def add_wakeup(self, event: asyncio.Event) -> None:
        """``event`` is set whenever ``NOTIFY herald_deliveries`` arrives (the scheduler
        loop uses it to start a fan-out at once)."""
        self._wakeups.append(event)

    # -- public API ---------------------------------------------------------

    @property
    def listening(self) -> bool:
        """True while the LISTEN connection is established (a NOTIFY wakes the loops)."""
        return self._listening.is_set()

    async def wait_listening(self, timeout: float = 10.0) -> None:
        """Return once the worker listens; ``TimeoutError`` after ``timeout`` seconds."""
        await asyncio.wait_for(self._listening.wait(), timeout=timeout)

    async def run(self, stop: asyncio.Event) -> None:
        """Run ``concurrency`` claim loops until ``stop`` is set, then drain and return."""
        listener = asyncio.create_task(self._listen(stop), name="delivery-listener")
        loops = [
            asyncio.create_task(self._loop(index, stop), name=f"delivery-loop-{index}")
            for index in range(self._settings.concurrency)
        ]
        log.info("worker started", worker=self.name, concurrency=len(loops))
        try:
            await asyncio.gather(*loops)
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
            log.info(
                "worker stopped",
                worker=self.name,
                sent=self.totals.sent,
                failed=self.totals.failed,
                retried=self.totals.retried,
                released=self.totals.released,
            )

    async def run_once(self, stop: asyncio.Event | None = None) -> Counters:
        """Claim and process one batch (tests, and the body of each loop)."""
        stop = stop or asyncio.Event()
        limit = self.claim_limit
        # Under a global rate the tokens are reserved *before* claiming: a wait for them
        # then holds no lease, so no other worker can re-claim a batch that is waiting.
        if not await self._reserve(limit, stop):
            return Counters()
        lease = uuid.uuid4()
        claim_started_ns = time.time_ns()
        try:
            async with self._db.connection() as conn:
                rows = await repository.claim(
                    conn,
                    limit=limit,
                    lease_seconds=self._settings.lease_seconds,
                    lease_token=lease,
                    worker=self.name,
                )
        except BaseException:
            await self._unreserve(limit)
            raise
        await self._unreserve(limit - len(rows))
        report = Counters(claimed=len(rows), rescued=sum(row.rescued for row in rows))
        if not rows:
            return report
        batch = Batch(rows, lease, claim_started_ns=claim_started_ns)
        heartbeat = asyncio.create_task(self._runner.keep_lease(batch, report))
        processing = asyncio.create_task(self._runner.process(batch, report))
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({processing, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not processing.done():
                # Shutting down: the batch in hand gets the drain budget; then what is
                # known is recorded and the rest released.
                done, _ = await asyncio.wait({processing}, timeout=self._settings.drain_seconds)
                if not done:
                    await stop_task(processing)
                    await self._runner.finish_cancelled(batch, report)
                else:
                    processing.result()
            else:
                processing.result()
        finally:
            stopping.cancel()
            await stop_task(heartbeat)
            self.totals.add(report)
            metrics.export(report, self._runner.provider_name)
        return report

    @property
    def claim_limit(self) -> int:
        """Rows per claim: the batch size, but never more than one second of the global rate."""
        rate = self._settings.rate_per_second
        if not rate:
            return self._settings.batch_size
        return max(1, min(self._settings.batch_size, int(rate)))

    # -- internals -----------------------------------------------------------

    async def _loop(self, index: int, stop: asyncio.Event) -> None:
        wake = asyncio.Event()
        self._wakeups.append(wake)
        failures = 0
        while not stop.is_set():
            wake.clear()
            try:
                report = await self.run_once(stop)
                failures = 0
            except Unavailable as exc:
                failures += 1
                delay = min(30.0, 0.5 * 2**failures)
                log.warning("database unavailable, worker backing off", error=str(exc), delay=delay)
                await sleep_or_stop(stop, delay)
                continue
            except Exception:
                failures += 1
                log.exception("delivery batch crashed; its rows return after the lease")
                await sleep_or_stop(stop, min(30.0, 0.5 * 2**failures))
                continue
            if report.claimed >= self.claim_limit:
                continue  # more is waiting: claim again at once
            await wait_any(stop, wake, timeout=self._settings.poll_interval_seconds)
        log.debug("claim loop finished", loop=index)

    async def _reserve(self, count: int, stop: asyncio.Event) -> bool:
        """Take ``count`` tokens from the global bucket (shared by every worker) and wait
        off any debt. False when ``stop`` came first (the tokens are given back)."""
        rate = self._settings.rate_per_second
        if not rate:
            return True
        async with self._db.connection() as conn:
            balance = await repository.take_tokens(conn, RATE_BUCKET, rate, count)
        if balance < 0:
            metrics.RATE_LIMIT_WAITS.inc()
            metrics.RATE_LIMIT_WAIT_SECONDS.inc(-balance / rate)
            await sleep_or_stop(stop, -balance / rate)
            if stop.is_set():
                await self._unreserve(count)
                return False
        return True

    async def _unreserve(self, count: int) -> None:
        rate = self._settings.rate_per_second
        if not rate or count <= 0:
            return
        try:
            async with self._db.connection() as conn:
                await repository.return_tokens(conn, RATE_BUCKET, rate, count)
        except Unavailable:
            log.debug("could not return unused rate tokens", count=count)

    def _wake_all(self, *_: object) -> None:
        for event in self._wakeups:
            event.set()

    async def _listen(self, stop: asyncio.Event) -> None:
        """Keep a LISTEN connection open; reconnect after failures (polling covers gaps)."""
        if self._dsn is None:
            return
        while not stop.is_set():
            conn: asyncpg.Connection[asyncpg.Record] | None = None
            try:
                conn = await connect(self._dsn, self._db_settings, "herald-worker-listen")
                await conn.add_listener(CHANNEL, self._wake_all)
                self._listening.set()
                self._wake_all()  # catch up on anything queued while not listening
                while not stop.is_set() and not conn.is_closed():
                    await sleep_or_stop(stop, 1.0)
            except (Unavailable, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                self._listening.clear()
                log.debug("listen connection lost", error=str(exc))
                await sleep_or_stop(stop, 2.0)
            finally:
                self._listening.clear()
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), timeout=2)
