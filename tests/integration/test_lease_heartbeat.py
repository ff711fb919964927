"""A live worker keeps its claim; a claim it lost is noticed, not silently overwritten."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

from herald.core.config import Settings
from herald.core.db import Database
from herald.delivery.worker import DeliveryWorker
from herald.email.message import EmailMessage, SendResult
from tests.support.queue import RecordingProvider, enqueue_many, statuses, wait_until


def worker_for(
    db: Database, settings: Settings, provider: object, **delivery: object
) -> DeliveryWorker:
    return DeliveryWorker(
        db,
        provider,  # type: ignore[arg-type]
        settings.delivery.model_copy(update=delivery),
        name=f"test-{uuid.uuid4().hex[:6]}",
    )


class GatedProvider(RecordingProvider):
    """Accepts everything, but only once ``gate`` is set (a provider as slow as a test needs)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.called = asyncio.Event()

    async def send_batch(self, messages: Sequence[EmailMessage]) -> list[SendResult]:
        self.called.set()
        await self.gate.wait()
        return await super().send_batch(messages)


async def test_a_batch_held_longer_than_its_lease_is_not_claimed_by_another_worker(
    db: Database, settings: Settings
) -> None:
    await enqueue_many(db, 5)
    slow = GatedProvider()
    holder = worker_for(db, settings, slow, lease_seconds=0.3, batch_size=5)
    other = worker_for(db, settings, RecordingProvider(), lease_seconds=0.3, batch_size=5)
    holding = asyncio.create_task(holder.run_once())
    await slow.called.wait()
    # Ten leases' worth of attempts by another worker while the first is still sending.
    stolen = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 3.0
    while loop.time() < deadline:
        stolen += (await other.run_once()).claimed
        await asyncio.sleep(0.05)
    slow.gate.set()
    report = await holding
    assert stolen == 0, "a live worker's batch was claimed again"
    assert report.sent == 5
    assert holder.totals.renewals >= 5
    assert (holder.totals.lost, holder.totals.fenced_misses) == (0, 0)
    assert (await statuses(db))["sent"] == 5


async def test_rows_whose_lease_was_lost_are_counted_and_not_overwritten(
    db: Database, settings: Settings
) -> None:
    ids = await enqueue_many(db, 5)
    slow = GatedProvider()
    holder = worker_for(db, settings, slow, lease_seconds=0.6, batch_size=5)
    holding = asyncio.create_task(holder.run_once())
    await slow.called.wait()
    # As if the lease of two rows had run out and another worker had claimed them.
    intruder = uuid.uuid4()
    async with db.connection() as conn:
        stolen_at = await conn.fetchval(
            "UPDATE deliveries SET lease_token = $1, leased_by = 'intruder' WHERE id = ANY($2)"
            " RETURNING clock_timestamp()",
            intruder,
            ids[:2],
        )

    async def renewed_since() -> bool:
        # A heartbeat after the intrusion pushes the held rows' lease past stolen + lease.
        async with db.connection() as conn:
            oldest = await conn.fetchval(
                "SELECT min(available_at) FROM deliveries WHERE id = ANY($1)", ids[2:]
            )
        return bool((oldest - stolen_at).total_seconds() >= 0.6)

    await wait_until(renewed_since, timeout=10, interval=0.02)
    slow.gate.set()
    report = await holding
    assert report.lost == 2
    assert report.fenced_misses == 2  # the two results it could no longer write
    assert report.sent == 3
    async with db.connection() as conn:
        kept = await conn.fetch(
            "SELECT status, leased_by FROM deliveries WHERE id = ANY($1)", ids[:2]
        )
    assert [(r["status"], r["leased_by"]) for r in kept] == [("sending", "intruder")] * 2
