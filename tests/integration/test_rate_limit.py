"""The global send rate (``HERALD_DELIVERY__RATE_PER_SECOND``) and a provider's Retry-After.

The limit is a token bucket row in Postgres shared by every worker, so three workers
together must stay under it (three private buckets would send three times as fast). The
workers here are in-process ``DeliveryWorker`` instances with separate pools' worth of
claims but one database, which is all the bucket coordinates through.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import pytest

from herald.core.config import EmailSettings, Settings
from herald.core.db import Database
from herald.delivery.worker import DeliveryWorker
from herald.email.message import Accepted, EmailMessage, EmailProvider, SendResult
from herald.email.postmark import PostmarkProvider
from tests.support.postmark_sink import PostmarkSink
from tests.support.queue import enqueue_many, rows, statuses, wait_until

LIMIT = 40.0
MESSAGES = 240
WORKERS = 3
# The bucket starts full: one second's worth of tokens goes out at once.
BURST_SECONDS = 1.0


class Timestamps:
    """When each provider call happened and for whom (shared by every worker's provider)."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, list[str]]] = []

    def record(self, messages: Sequence[EmailMessage]) -> None:
        self.calls.append((time.monotonic(), [m.recipient for m in messages]))

    @property
    def sent(self) -> Counter[str]:
        return Counter(r for _, recipients in self.calls for r in recipients)

    def rate(self, *, skip_seconds: float = 0.0) -> float:
        """Messages per second between the first call after ``skip_seconds`` and the last
        (the messages of that first call were paid for before the window opened)."""
        start = self.calls[0][0] + skip_seconds
        window = [(t, len(r)) for t, r in self.calls if t >= start]
        assert len(window) >= 2, f"too few calls to measure a rate: {self.calls}"
        elapsed = window[-1][0] - window[0][0]
        return sum(n for _, n in window[1:]) / elapsed


class TimedProvider:
    """Accepts everything (or delegates to ``inner``), recording when each call started."""

    name = "timed"

    def __init__(
        self, timestamps: Timestamps, inner: EmailProvider | None = None, max_batch_size: int = 50
    ) -> None:
        self._timestamps = timestamps
        self._inner = inner
        self.max_batch_size = inner.max_batch_size if inner else max_batch_size

    async def send_batch(self, messages: Sequence[EmailMessage]) -> list[SendResult]:
        self._timestamps.record(messages)
        if self._inner is not None:
            return await self._inner.send_batch(messages)
        return [Accepted(f"id-{m.recipient}") for m in messages]

    async def aclose(self) -> None:
        if self._inner is not None:
            await self._inner.aclose()


def make_worker(
    db: Database, settings: Settings, provider: EmailProvider, **delivery: object
) -> DeliveryWorker:
    return DeliveryWorker(
        db,
        provider,
        settings.delivery.model_copy(update=delivery),
        name=f"rate-{uuid.uuid4().hex[:6]}",
    )


@asynccontextmanager
async def running(workers: list[DeliveryWorker]) -> AsyncIterator[None]:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(worker.run(stop)) for worker in workers]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def send_with_three_workers(
    db: Database,
    settings: Settings,
    *,
    rate: float,
    count: int = MESSAGES,
    batch_size: int = 10,
    lease: float = 5.0,
    timeout: float | None = None,
) -> Timestamps:
    """Queue ``count`` messages and run three workers until every one is sent, a message
    goes out twice, or ``timeout`` passes (the caller asserts on what happened)."""
    await enqueue_many(db, count)
    timestamps = Timestamps()
    workers = [
        make_worker(
            db,
            settings,
            TimedProvider(timestamps),
            rate_per_second=rate,
            batch_size=batch_size,
            lease_seconds=lease,
            drain_seconds=0.5,  # a batch still waiting for tokens is released at the end
        )
        for _ in range(WORKERS)
    ]
    async with running(workers):

        async def finished() -> bool:
            twice = timestamps.sent.total() > len(timestamps.sent)
            return twice or (await statuses(db))["sent"] == count

        await wait_until(finished, timeout=timeout or 4 * count / (rate or count) + 10)
    return timestamps


@pytest.mark.slow
async def test_three_workers_together_stay_under_the_global_rate(
    db: Database, settings: Settings
) -> None:
    timestamps = await send_with_three_workers(db, settings, rate=LIMIT)
    measured = timestamps.rate(skip_seconds=BURST_SECONDS)
    print(f"limit {LIMIT}/s, three workers measured {measured:.1f}/s after the burst")
    assert measured <= LIMIT * 1.1, f"{measured:.1f} msg/s over a limit of {LIMIT}/s"
    # Not starved either: the workers wait for their tokens, not much longer.
    assert measured >= LIMIT * 0.7, f"only {measured:.1f} msg/s with a limit of {LIMIT}/s"
    assert set(timestamps.sent.values()) == {1}


async def test_without_a_limit_the_same_workers_are_much_faster(
    db: Database, settings: Settings
) -> None:
    timestamps = await send_with_three_workers(db, settings, rate=0)
    measured = timestamps.rate()
    print(f"no limit: three workers measured {measured:.0f}/s")
    assert measured > 5 * LIMIT, f"only {measured:.1f} msg/s without a limit"
    assert set(timestamps.sent.values()) == {1}


@pytest.mark.slow
async def test_a_batch_waiting_for_rate_tokens_is_not_sent_twice(
    db: Database, settings: Settings
) -> None:
    # 3 workers x 20 messages in hand at 20/s: each waits up to ~3 s for its tokens,
    # longer than the 0.5 s lease. Waiting must not hand the batch to another worker.
    timestamps = await send_with_three_workers(
        db, settings, rate=20, count=120, batch_size=20, lease=0.5, timeout=15
    )
    twice = {r: n for r, n in timestamps.sent.items() if n > 1}
    assert not twice, f"{len(twice)} recipients got the message more than once"
    assert (await statuses(db)) == {"sent": 120}


@pytest.mark.slow
async def test_a_429_retry_after_delays_the_retry_by_about_that_long(
    db: Database, settings: Settings
) -> None:
    retry_after = 1.5
    timestamps = Timestamps()
    async with PostmarkSink(token="t") as sink:
        postmark = PostmarkProvider(
            EmailSettings(
                provider="postmark",
                timeout_seconds=5,
                postmark={"base_url": sink.base_url, "server_token": "t"},
            )
        )
        provider = TimedProvider(timestamps, postmark)
        sink.rate_limit_next(retry_after=retry_after)
        await enqueue_many(db, 5)
        # Without the hint the exponential backoff would wait 10-20 s.
        worker = make_worker(
            db, settings, provider, retry_base_seconds=20.0, retry_max_seconds=60.0
        )
        try:
            async with running([worker]):

                async def all_sent() -> bool:
                    return (await statuses(db))["sent"] == 5

                await wait_until(all_sent, timeout=15)
        finally:
            await provider.aclose()
    assert sink.requests["/email/batch"] >= 2
    first: dict[str, float] = {}
    waited: dict[str, float] = {}
    for at, recipients in timestamps.calls:
        for recipient in recipients:
            if recipient in first:
                waited.setdefault(recipient, at - first[recipient])
            else:
                first[recipient] = at
    print("retried after", {r: round(w, 2) for r, w in waited.items()})
    assert len(waited) == 5
    for recipient, seconds in waited.items():
        # The hint plus at most 10 % jitter, plus a poll interval and a round trip.
        assert retry_after <= seconds <= retry_after * 1.1 + 0.5, (recipient, seconds)
    assert {r["attempts"] for r in await rows(db)} == {2}
