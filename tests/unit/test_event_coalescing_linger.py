"""The webhook coalescer's timing, without a database: an idle call is recorded at once;
under load the next recording waits a moment for more calls, unless enough already wait.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from herald.deliverability import coalescing
from herald.deliverability.coalescing import EventCoalescer
from herald.deliverability.domain import EventKind, Provider, ProviderEvent, RecordedEvent
from herald.deliverability.service import EventRecorder

RECORDING_SECONDS = 0.03


def event(n: int) -> ProviderEvent:
    return ProviderEvent(
        provider=Provider.POSTMARK,
        event_id=f"bounce:{n}",
        kind=EventKind.HARD_BOUNCE,
        occurred_at=datetime(2026, 12, 5, tzinfo=UTC),
        recipient=f"reader{n}@example.com",
    )


class SlowRecorder(EventRecorder):
    """Takes :data:`RECORDING_SECONDS` a batch; remembers each batch's size and start."""

    def __init__(self) -> None:  # no database: nothing is stored
        self.batches: list[tuple[int, float]] = []

    async def record(self, events: Sequence[ProviderEvent]) -> list[RecordedEvent]:
        self.batches.append((len(events), time.monotonic()))
        await asyncio.sleep(RECORDING_SECONDS)
        return [RecordedEvent(e, True, None, None, False) for e in events]


async def test_an_idle_call_is_recorded_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(coalescing, "LINGER_SECONDS", 5.0)
    recorder = SlowRecorder()
    coalescer = EventCoalescer(recorder)
    started = time.monotonic()
    [result] = await coalescer.record([event(1)])
    assert result.stored
    assert time.monotonic() - started < 1.0  # not held back by the 5 s linger
    # A later call, after the first was answered, is again a first call: no linger.
    started = time.monotonic()
    await coalescer.record([event(2)])
    assert time.monotonic() - started < 1.0
    assert [size for size, _ in recorder.batches] == [1, 1]


async def test_under_load_the_next_recording_waits_for_more_calls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(coalescing, "LINGER_SECONDS", 0.2)
    recorder = SlowRecorder()
    coalescer = EventCoalescer(recorder)
    first = asyncio.create_task(coalescer.record([event(0)]))
    await asyncio.sleep(0.01)  # the first recording is running
    calls = [asyncio.create_task(coalescer.record([event(1)]))]
    await first
    # The first recording is done; calls keep arriving during the linger and join.
    for n in range(2, 6):
        await asyncio.sleep(0.02)
        calls.append(asyncio.create_task(coalescer.record([event(n)])))
    results = await asyncio.gather(*calls)
    assert [r[0].event.event_id for r in results] == [f"bounce:{n}" for n in range(1, 6)]
    assert [size for size, _ in recorder.batches] == [1, 5]
    waited = recorder.batches[1][1] - recorder.batches[0][1]
    assert waited >= RECORDING_SECONDS + 0.2 - 0.01


async def test_enough_waiting_events_are_recorded_without_lingering(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(coalescing, "LINGER_SECONDS", 5.0)
    monkeypatch.setattr(coalescing, "LINGER_BELOW", 10)
    recorder = SlowRecorder()
    coalescer = EventCoalescer(recorder)
    first = asyncio.create_task(coalescer.record([event(0)]))
    await asyncio.sleep(0.01)
    started = time.monotonic()
    rest = [coalescer.record([event(n)]) for n in range(1, 11)]  # 10 wait: no linger
    await asyncio.gather(first, *rest)
    assert time.monotonic() - started < 1.0
    assert [size for size, _ in recorder.batches] == [1, 10]
