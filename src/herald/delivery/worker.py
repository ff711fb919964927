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

Shutdown (``stop`` set): loops stop claiming; a batch in hand gets
``drain_seconds`` to finish, after which its unsent rows are released back to
the queue without counting an attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import asyncpg

from herald.core.config import DatabaseSettings, DeliverySettings
from herald.core.db import Database, connect
from herald.core.errors import Unavailable
from herald.core.telemetry import get_logger
from herald.delivery import repository
from herald.delivery.domain import ClaimedDelivery, Outcomes, Suppressed, decide, render_stored
from herald.email.message import EmailMessage, EmailProvider, PermanentFailure, SendResult

log = get_logger("herald.delivery")

CHANNEL = "herald_deliveries"

Rendered = EmailMessage | PermanentFailure | Suppressed
# Turns claimed rows into messages; a PermanentFailure or Suppressed skips the send.
Renderer = Callable[[Sequence[ClaimedDelivery]], Awaitable[list[Rendered]]]
# Runs after a batch's results are recorded (issue progress, completion).
AfterBatch = Callable[[Sequence[ClaimedDelivery], Outcomes], Awaitable[None]]

RATE_BUCKET = "provider-sends"


async def render_stored_batch(deliveries: Sequence[ClaimedDelivery]) -> list[Rendered]:
    return [render_stored(d) for d in deliveries]


@dataclass
class BatchReport:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    released: int = 0


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
        name: str | None = None,
    ) -> None:
        self._db = db
        self._provider = provider
        self._settings = settings
        self._dsn = dsn
        self._db_settings = db_settings or DatabaseSettings()
        self._renderers = renderers or {}
        self._after_batch = after_batch
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self._wakeups: list[asyncio.Event] = []
        self._sending = asyncio.Semaphore(settings.send_concurrency)
        self.totals = BatchReport()

    # -- public API ---------------------------------------------------------

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

    async def run_once(self, stop: asyncio.Event | None = None) -> BatchReport:
        """Claim and process one batch (tests, and the body of each loop)."""
        stop = stop or asyncio.Event()
        limit = self.claim_limit
        # Under a global rate the tokens are reserved *before* claiming: a wait for them
        # then holds no lease, so no other worker can re-claim a batch that is waiting.
        if not await self._reserve(limit, stop):
            return BatchReport()
        lease = uuid.uuid4()
        try:
            async with self._db.connection() as conn:
                batch = await repository.claim(
                    conn,
                    limit=limit,
                    lease_seconds=self._settings.lease_seconds,
                    lease_token=lease,
                    worker=self.name,
                )
        except BaseException:
            await self._unreserve(limit)
            raise
        await self._unreserve(limit - len(batch))
        report = BatchReport(claimed=len(batch))
        if not batch:
            return report
        processing = asyncio.create_task(self._process(batch, lease, report))
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({processing, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not processing.done():
                # Shutting down: the batch in hand gets the drain budget, then is released.
                done, _ = await asyncio.wait({processing}, timeout=self._settings.drain_seconds)
                if not done:
                    processing.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await processing
                    report.released = await self._release(batch, lease)
            else:
                processing.result()
        finally:
            stopping.cancel()
        self._add_to_totals(report)
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
                await _sleep_or_stop(stop, delay)
                continue
            except Exception:
                failures += 1
                log.exception("delivery batch crashed; its rows return after the lease")
                await _sleep_or_stop(stop, min(30.0, 0.5 * 2**failures))
                continue
            if report.claimed >= self.claim_limit:
                continue  # more is waiting: claim again at once
            await _wait_any(stop, wake, self._settings.poll_interval_seconds)
        log.debug("claim loop finished", loop=index)

    async def _process(
        self, batch: list[ClaimedDelivery], lease: uuid.UUID, report: BatchReport
    ) -> None:
        exhausted = [d for d in batch if d.attempts > d.max_attempts]
        live = [d for d in batch if d.attempts <= d.max_attempts]
        results: list[SendResult | Suppressed] = []
        rendered = await self._render(live)
        to_send = [
            (d, m) for d, m in zip(live, rendered, strict=True) if isinstance(m, EmailMessage)
        ]
        sent_results = await self._send([m for _, m in to_send])
        by_id: dict[int, SendResult] = {
            d.id: r for (d, _), r in zip(to_send, sent_results, strict=True)
        }
        for delivery, message in zip(live, rendered, strict=True):
            results.append(message if not isinstance(message, EmailMessage) else by_id[delivery.id])
        outcomes = decide(
            live,
            results,
            retry_base=self._settings.retry_base_seconds,
            retry_cap=self._settings.retry_max_seconds,
        )
        for delivery in exhausted:
            outcomes.failed.append(
                (delivery.id, f"gave up: the lease expired {delivery.max_attempts} times")
            )
        await self._record(outcomes, lease)
        if self._after_batch is not None:
            try:
                await self._after_batch(batch, outcomes)
            except Unavailable:
                log.warning("after-batch step skipped: database unavailable")
        report.sent += len(outcomes.sent)
        report.retried += len(outcomes.retry)
        report.failed += len(outcomes.failed)
        if outcomes.failed or outcomes.retry:
            log.info(
                "batch had failures",
                worker=self.name,
                sent=len(outcomes.sent),
                retry=len(outcomes.retry),
                failed=len(outcomes.failed),
                first_error=(outcomes.failed or outcomes.retry)[0][-1],
            )

    async def _render(self, batch: list[ClaimedDelivery]) -> list[Rendered]:
        if not batch:
            return []
        kinds: dict[str, list[int]] = {}
        for position, delivery in enumerate(batch):
            kinds.setdefault(delivery.kind, []).append(position)
        rendered: list[Rendered | None] = [None] * len(batch)
        for kind, positions in kinds.items():
            renderer = self._renderers.get(kind, render_stored_batch)
            messages = await renderer([batch[p] for p in positions])
            for position, message in zip(positions, messages, strict=True):
                rendered[position] = message
        return [m if m is not None else PermanentFailure("not rendered") for m in rendered]

    async def _send(self, messages: list[EmailMessage]) -> list[SendResult]:
        size = max(1, self._provider.max_batch_size)
        chunks = [messages[i : i + size] for i in range(0, len(messages), size)]

        async def send(chunk: list[EmailMessage]) -> list[SendResult]:
            async with self._sending:
                return await self._provider.send_batch(chunk)

        answers = await asyncio.gather(*(send(chunk) for chunk in chunks))
        return [result for answer in answers for result in answer]

    async def _reserve(self, count: int, stop: asyncio.Event) -> bool:
        """Take ``count`` tokens from the global bucket (shared by every worker) and wait
        off any debt. False when ``stop`` came first (the tokens are given back)."""
        rate = self._settings.rate_per_second
        if not rate:
            return True
        async with self._db.connection() as conn:
            balance = await repository.take_tokens(conn, RATE_BUCKET, rate, count)
        if balance < 0:
            await _sleep_or_stop(stop, -balance / rate)
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

    async def _record(self, outcomes: Outcomes, lease: uuid.UUID) -> None:
        # The messages are out: losing their results would mean sending them again
        # after the lease expires, so retry the bookkeeping through short DB outages.
        deadline = asyncio.get_running_loop().time() + self._settings.lease_seconds / 2
        delay = 0.2
        while True:
            try:
                async with self._db.connection() as conn:
                    await repository.record(conn, outcomes, lease)
            except Unavailable:
                if asyncio.get_running_loop().time() + delay > deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            else:
                return

    async def _release(self, batch: list[ClaimedDelivery], lease: uuid.UUID) -> int:
        try:
            async with self._db.connection() as conn:
                released = await repository.release(conn, [d.id for d in batch], lease)
        except Unavailable:
            log.warning(
                "could not release batch; it returns when the lease expires", size=len(batch)
            )
            return 0
        log.info("released unsent deliveries", worker=self.name, released=released)
        return released

    def _add_to_totals(self, report: BatchReport) -> None:
        self.totals.claimed += report.claimed
        self.totals.sent += report.sent
        self.totals.retried += report.retried
        self.totals.failed += report.failed
        self.totals.released += report.released

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
                self._wake_all()  # catch up on anything queued while not listening
                while not stop.is_set() and not conn.is_closed():
                    await _sleep_or_stop(stop, 1.0)
            except (Unavailable, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.debug("listen connection lost", error=str(exc))
                await _sleep_or_stop(stop, 2.0)
            finally:
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), timeout=2)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event, timeout: float) -> None:
    waiters = {asyncio.create_task(stop.wait()), asyncio.create_task(wake.wait())}
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
