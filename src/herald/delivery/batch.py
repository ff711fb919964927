"""One claimed batch from render to record: what a worker does while it holds a lease.

* **Heartbeat.** While the batch is in hand (rendering, sending, recording), a task
  renews the lease of its rows every ``lease_seconds / 3``, fenced by the lease
  token. A slow provider therefore never lets another worker claim a batch whose
  worker is alive; the duplicate bound stays "one batch per worker crash". Rows a
  renewal no longer finds (the lease ran out while the database was unreachable)
  are *lost*: they are not sent if their send has not started, and counted.
* **Results as they come.** Each provider call's results are kept the moment it
  answers, so when the drain budget runs out at shutdown, the results known so far
  are recorded first (those messages were accepted: releasing them would send them
  again) and only the rest is released.
* **Refusals reported.** Rows a mail server refused for good (an SMTP 5xx: the
  provider's ``PermanentFailure`` carries the reply) are handed, once recorded, to the
  ``on_refused`` hook the composition root plugs in (the deliverability policy: a
  bounce suppresses the address); a batch without permanent failures never looks.
* **Every recipient on its own.** A renderer's per-row failures are that row's
  result; a renderer or provider that raises as a whole turns into a transient
  failure of its rows, never into a crashed batch whose results are lost.
* **Traced** (when tracing is on): one ``herald.delivery.batch`` span from the claim
  to the record, and one ``herald.email.send`` span per provider call (provider,
  messages, outcome); both link to where their rows' traces start (the request
  that published the issue or enqueued the message).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from herald.core import tracing
from herald.core.config import DeliverySettings
from herald.core.db import Database
from herald.core.errors import Unavailable
from herald.core.telemetry import get_logger
from herald.delivery import metrics, repository
from herald.delivery.domain import ClaimedDelivery, Outcomes, Suppressed, decide, render_stored
from herald.email.message import (
    Accepted,
    EmailMessage,
    EmailProvider,
    PermanentFailure,
    SendResult,
    TransientFailure,
)

log = get_logger("herald.delivery")

Rendered = EmailMessage | PermanentFailure | Suppressed
# Turns claimed rows into messages; a PermanentFailure or Suppressed skips the send.
Renderer = Callable[[Sequence[ClaimedDelivery]], Awaitable[list[Rendered]]]
# Runs after a batch's results are recorded (issue progress, completion).
AfterBatch = Callable[[Sequence[ClaimedDelivery], Outcomes], Awaitable[None]]
# Runs after a batch's results are recorded, with the rows a mail server refused for
# good (their failure's ``refusal`` is set). Its errors are logged, never raised.
Refusals = Callable[[Sequence[tuple[ClaimedDelivery, PermanentFailure]]], Awaitable[None]]


async def render_stored_batch(deliveries: Sequence[ClaimedDelivery]) -> list[Rendered]:
    return [render_stored(d) for d in deliveries]


@dataclass
class Counters:
    """What a worker has done; :func:`herald.delivery.metrics.export` turns each batch's
    figures into the Prometheus counters."""

    claimed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    released: int = 0
    suppressed: int = 0
    rescued: int = 0  # claimed after another worker's lease ran out
    renewals: int = 0  # heartbeat UPDATEs
    lost: int = 0  # rows whose lease ran out under a live worker
    fenced_misses: int = 0  # rows a fenced result write no longer found

    def add(self, other: Counters) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class Batch:
    """The rows of one claim and everything known about them so far."""

    rows: list[ClaimedDelivery]
    lease: uuid.UUID
    results: dict[int, SendResult | Suppressed] = field(default_factory=dict)
    lost: set[int] = field(default_factory=set)
    recorded: set[int] = field(default_factory=set)
    claimed_at: float = field(default_factory=time.monotonic)
    claim_started_ns: int | None = None  # wall clock (time.time_ns) before the claim query

    @property
    def unfinished(self) -> list[int]:
        """Rows with no result yet that this lease still holds."""
        done = self.results.keys() | self.lost | self.recorded
        return [d.id for d in self.rows if d.id not in done]


class BatchRunner:
    def __init__(
        self,
        db: Database,
        provider: EmailProvider,
        settings: DeliverySettings,
        renderers: dict[str, Renderer],
        after_batch: AfterBatch | None,
        worker: str,
        on_refused: Refusals | None = None,
    ) -> None:
        self._db = db
        self._provider = provider
        self._settings = settings
        self._renderers = renderers
        self._after_batch = after_batch
        self._on_refused = on_refused
        self._worker = worker
        self._sending = asyncio.Semaphore(settings.send_concurrency)
        self.provider_name = provider.name

    # -- the batch's life ----------------------------------------------------------

    async def process(self, batch: Batch, report: Counters) -> None:
        """Render, send, record. Cancellable: see :meth:`finish_cancelled`."""
        with tracing.span(
            "herald.delivery.batch",
            kind="consumer",
            start_ns=batch.claim_started_ns,
            links=(d.traceparent for d in batch.rows),
            attributes={
                "herald.delivery.rows": len(batch.rows),
                "herald.delivery.worker": self._worker,
                "herald.email.provider": self.provider_name,
            },
        ):
            live = [d for d in batch.rows if d.attempts <= d.max_attempts]
            rendered = await self._render(live)
            to_send: list[tuple[ClaimedDelivery, EmailMessage]] = []
            for delivery, message in zip(live, rendered, strict=True):
                if isinstance(message, EmailMessage):
                    to_send.append((delivery, message.for_delivery(delivery.id)))
                else:
                    batch.results[delivery.id] = message
            await self._send(to_send, batch)
            await self.record(batch, report)

    async def record(self, batch: Batch, report: Counters) -> None:
        """Write every known result (and give up on rows past their attempts)."""
        known = [d for d in batch.rows if d.id in batch.results and d.id not in batch.recorded]
        outcomes = decide(
            known,
            [batch.results[d.id] for d in known],
            retry_base=self._settings.retry_base_seconds,
            retry_cap=self._settings.retry_max_seconds,
        )
        for delivery in batch.rows:
            if delivery.attempts > delivery.max_attempts and delivery.id not in batch.recorded:
                error = f"gave up: the lease expired {delivery.max_attempts} times"
                outcomes.failed.append((delivery.id, error))
        if not len(outcomes):
            return
        recorded = await self._record(outcomes, batch.lease)
        touched = sum(recorded)
        batch.recorded.update(d_id for d_id, *_ in outcomes.sent)
        batch.recorded.update(d_id for d_id, *_ in outcomes.retry)
        batch.recorded.update(d_id for d_id, *_ in outcomes.failed)
        batch.recorded.update(d_id for d_id, *_ in outcomes.suppressed)
        if touched < len(outcomes):
            report.fenced_misses += len(outcomes) - touched
            log.warning(
                "fenced write touched fewer rows than expected: their lease had run out",
                worker=self._worker,
                expected=len(outcomes),
                touched=touched,
            )
        if self._after_batch is not None:
            try:
                await self._after_batch(batch.rows, outcomes)
            except Unavailable:
                log.warning("after-batch step skipped: database unavailable")
        if outcomes.failed and self._on_refused is not None:
            await self._report_refusals(known, batch)
        report.sent += recorded.sent
        report.retried += recorded.retried
        report.failed += recorded.failed
        report.suppressed += recorded.suppressed
        if outcomes.failed or outcomes.retry:
            log.info(
                "batch had failures",
                worker=self._worker,
                sent=len(outcomes.sent),
                retry=len(outcomes.retry),
                failed=len(outcomes.failed),
                first_error=(outcomes.failed or outcomes.retry)[0][-1],
            )

    async def _report_refusals(self, rows: Sequence[ClaimedDelivery], batch: Batch) -> None:
        refused = [
            (delivery, result)
            for delivery in rows
            if isinstance(result := batch.results[delivery.id], PermanentFailure)
            and result.refusal is not None
        ]
        if not refused or self._on_refused is None:
            return
        try:
            await self._on_refused(refused)
        except Unavailable as exc:
            log.warning(
                "refusals not reported: database unavailable",
                worker=self._worker,
                rows=len(refused),
                error=exc.message,
            )
        except Exception:
            log.exception("reporting refusals failed", worker=self._worker, rows=len(refused))

    async def finish_cancelled(self, batch: Batch, report: Counters) -> None:
        """After the drain budget ran out: record what is known, release the rest."""
        try:
            await self.record(batch, report)
        except Unavailable:
            log.warning("could not record the results known at shutdown", worker=self._worker)
        report.released += await self._release(batch.unfinished, batch.lease)

    async def keep_lease(self, batch: Batch, report: Counters) -> None:
        """The heartbeat: runs until cancelled, renewing every third of the lease."""
        lease_seconds = self._settings.lease_seconds
        interval = lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            held = [d.id for d in batch.rows if d.id not in batch.lost | batch.recorded]
            try:
                async with self._db.connection() as conn:
                    still = await repository.renew(conn, held, batch.lease, lease_seconds)
            except Unavailable as exc:
                log.warning("could not renew a lease", worker=self._worker, error=exc.message)
                interval = min(lease_seconds / 3, 1.0)  # try again soon
                continue
            interval = lease_seconds / 3
            report.renewals += 1
            gone = set(held) - still - batch.recorded  # recorded meanwhile: not lost
            if gone:
                batch.lost |= gone
                report.lost += len(gone)
                log.warning(
                    "lease lost on rows of a batch in hand; they will not be sent by this worker",
                    worker=self._worker,
                    rows=len(gone),
                )

    # -- steps ------------------------------------------------------------------------

    async def _render(
        self, rows: list[ClaimedDelivery]
    ) -> list[EmailMessage | SendResult | Suppressed]:
        kinds: dict[str, list[int]] = {}
        for position, delivery in enumerate(rows):
            kinds.setdefault(delivery.kind, []).append(position)
        rendered: list[EmailMessage | SendResult | Suppressed] = [
            PermanentFailure("not rendered")
        ] * len(rows)
        for kind, positions in kinds.items():
            renderer = self._renderers.get(kind, render_stored_batch)
            messages: Sequence[EmailMessage | SendResult | Suppressed]
            try:
                messages = await renderer([rows[p] for p in positions])
            except Unavailable:
                raise
            except Exception as exc:
                log.exception("a renderer failed as a whole; its rows are retried", kind=kind)
                messages = [TransientFailure(f"rendering failed: {exc!r}")] * len(positions)
            for position, message in zip(positions, messages, strict=True):
                rendered[position] = message
        return rendered

    async def _send(self, pairs: list[tuple[ClaimedDelivery, EmailMessage]], batch: Batch) -> None:
        size = max(1, self._provider.max_batch_size)
        chunks = [pairs[i : i + size] for i in range(0, len(pairs), size)]

        async def send(chunk: list[tuple[ClaimedDelivery, EmailMessage]]) -> None:
            async with self._sending:
                chunk = [(d, m) for d, m in chunk if d.id not in batch.lost]
                if not chunk:
                    return
                with tracing.span(
                    "herald.email.send",
                    links=(d.traceparent for d, _ in chunk),
                    attributes={
                        "herald.email.provider": self._provider.name,
                        "herald.email.messages": len(chunk),
                    },
                ) as span:
                    try:
                        answers = await self._provider.send_batch([m for _, m in chunk])
                    except Exception as exc:
                        log.exception("the provider raised instead of answering")
                        answers = [TransientFailure(f"provider error: {exc!r}")] * len(chunk)
                        span.set("herald.email.outcome", "error")
                    else:
                        span.set("herald.email.outcome", outcome_of(answers))
                for (delivery, _), answer in zip(chunk, answers, strict=True):
                    batch.results[delivery.id] = answer
                metrics.CLAIM_TO_ACCEPTED.labels(self._provider.name).observe(
                    time.monotonic() - batch.claimed_at
                )

        await asyncio.gather(*(send(chunk) for chunk in chunks))

    async def _record(self, outcomes: Outcomes, lease: uuid.UUID) -> repository.Recorded:
        # The messages are out: losing their results would mean sending them again
        # after the lease expires, so retry the bookkeeping through short DB outages.
        deadline = asyncio.get_running_loop().time() + self._settings.lease_seconds / 2
        delay = 0.2
        while True:
            try:
                async with self._db.connection() as conn:
                    return await repository.record(conn, outcomes, lease)
            except Unavailable:
                if asyncio.get_running_loop().time() + delay > deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _release(self, ids: list[int], lease: uuid.UUID) -> int:
        if not ids:
            return 0
        try:
            async with self._db.connection() as conn:
                released = await repository.release(conn, ids, lease)
        except Unavailable:
            log.warning("could not release batch; it returns when the lease expires", size=len(ids))
            return 0
        log.info("released unsent deliveries", worker=self._worker, released=released)
        return released


def outcome_of(answers: Sequence[SendResult]) -> str:
    """One word for a provider call's answers: accepted, transient, permanent or mixed."""
    kinds = {_OUTCOME_WORDS[type(answer)] for answer in answers}
    return kinds.pop() if len(kinds) == 1 else "mixed"


_OUTCOME_WORDS: dict[type, str] = {
    Accepted: "accepted",
    TransientFailure: "transient",
    PermanentFailure: "permanent",
}


async def stop_task(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
