"""Webhook calls recorded together: every caller gets its own events' results once they
are committed, busy moments batch calls into fewer transactions, and one caller's failure
is nobody else's."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from structlog.testing import capture_logs

from herald.core.db import Database
from herald.core.errors import Unavailable
from herald.deliverability import coalescing
from herald.deliverability.coalescing import EventCoalescer
from herald.deliverability.domain import EventKind, Provider, ProviderEvent, RecordedEvent
from herald.deliverability.policy import Policy
from herald.deliverability.service import EventRecorder


def event(n: int, kind: EventKind = EventKind.HARD_BOUNCE, **fields: object) -> ProviderEvent:
    return ProviderEvent(
        provider=Provider.POSTMARK,
        event_id=f"bounce:{n}",
        kind=kind,
        occurred_at=datetime(2026, 12, 5, tzinfo=UTC),
        recipient=f"reader{n}@example.com",
        **fields,  # type: ignore[arg-type]
    )


class CountingRecorder(EventRecorder):
    def __init__(self, db: Database) -> None:
        super().__init__(db, Policy())
        self.calls: list[int] = []

    async def record(self, events: Sequence[ProviderEvent]) -> list[RecordedEvent]:
        self.calls.append(len(events))
        return await super().record(events)


async def count(db: Database, table: str) -> int:
    async with db.connection() as conn:
        found: int = await conn.fetchval(f"SELECT count(*) FROM {table}")
    return found


async def test_concurrent_calls_share_transactions_and_get_their_own_results(
    db: Database,
) -> None:
    recorder = CountingRecorder(db)
    coalescer = EventCoalescer(recorder)
    calls = [[event(n)] for n in range(60)] + [[event(5)]]  # the last: a replay of call 5
    results = await asyncio.gather(*(coalescer.record(events) for events in calls))
    assert [r[0].event.event_id for r in results] == [c[0].event_id for c in calls]
    assert [r[0].stored for r in results] == [True] * 60 + [False]
    assert all(r[0].suppressed for r in results[:60])
    assert await count(db, "email_events") == 60
    assert await count(db, "suppressions") == 60
    assert sum(recorder.calls) == 61
    assert len(recorder.calls) < 61  # some calls waited and went together
    assert max(recorder.calls) > 1


async def test_one_callers_bad_event_fails_only_that_caller(db: Database) -> None:
    coalescer = EventCoalescer(EventRecorder(db, Policy()))
    bad = [event(999, delivery_id=2**70)]  # not a bigint: the batch's statement fails
    calls = [[event(n)] for n in range(12)] + [bad]
    results = await asyncio.gather(
        *(coalescer.record(events) for events in calls), return_exceptions=True
    )
    assert isinstance(results[-1], Exception)
    assert all(isinstance(r, list) and r[0].stored for r in results[:-1])
    assert await count(db, "email_events") == 12


class DownRecorder(EventRecorder):
    async def record(self, events: Sequence[ProviderEvent]) -> list[RecordedEvent]:  # noqa: ARG002
        await asyncio.sleep(0.01)
        raise Unavailable("the database is unavailable, please retry shortly")


async def test_a_database_outage_fails_every_waiting_caller(db: Database) -> None:
    coalescer = EventCoalescer(DownRecorder(db, Policy()))
    results = await asyncio.gather(
        *(coalescer.record([event(n)]) for n in range(10)), return_exceptions=True
    )
    assert all(isinstance(r, Unavailable) for r in results)


async def test_a_caller_that_goes_away_leaves_its_batch_alone(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(coalescing, "CONCURRENCY", 1)
    coalescer = EventCoalescer(EventRecorder(db, Policy()))
    first = asyncio.create_task(coalescer.record([event(1)]))
    await asyncio.sleep(0)
    gone = asyncio.create_task(coalescer.record([event(2)]))  # waits behind the first
    stays = asyncio.create_task(coalescer.record([event(3)]))
    await asyncio.sleep(0)
    gone.cancel()
    assert (await first)[0].stored
    assert (await stays)[0].stored
    with pytest.raises(asyncio.CancelledError):
        await gone
    for _ in range(100):  # the cancelled caller's events are still recorded with the batch
        if await count(db, "email_events") == 3:
            break
        await asyncio.sleep(0.02)
    assert await count(db, "email_events") == 3


async def test_each_recorded_batch_is_one_log_line(db: Database) -> None:
    # The webhooks' successful calls are logged at debug level; the batches are the
    # operator's record of a storm.
    coalescer = EventCoalescer(EventRecorder(db, Policy()))
    with capture_logs() as logs:
        await coalescer.record([event(1), event(2), event(1, kind=EventKind.COMPLAINT)])
    [line] = [e for e in logs if e["event"] == "provider events recorded"]
    assert (line["events"], line["stored"], line["suppressed"], line["log_level"]) == (
        3,
        2,
        2,
        "info",
    )
