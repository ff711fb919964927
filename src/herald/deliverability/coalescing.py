"""Webhook calls that arrive together, recorded together (group commit).

A provider posts one event per request, so a bounce storm is a storm of one-event
transactions: per event a ``BEGIN``, the recorder's statements, a ``COMMIT`` and its WAL
flush, and the statement planned again each time. The recorder is set-based, so one
transaction of 50 events costs Postgres about a third of 50 transactions of one
(BENCHMARKS.md, "Bounce storm"). Here each process keeps up to :data:`CONCURRENCY`
recordings in flight; a call that arrives while they are all busy waits and is recorded
with every other call that waited meanwhile, in one transaction. Idle, a call is recorded
at once, alone: nothing waits for a batch to fill. Busy (calls arrived while a recording
ran), the next recording first waits :data:`LINGER_SECONDS` for more calls unless
:data:`LINGER_BELOW` events already wait: a batch's fixed cost (~2.5 ms of Postgres: the
statements' plans, the triggers, the commit) is then shared by tens of events instead of
a handful — B1 recorded 15 events a transaction on average without it.

Each caller still gets its own answer only once its events are committed. A batch that
fails with :class:`~herald.core.errors.Unavailable` fails every caller in it (503: the
provider retries); any other failure is retried call by call, so one caller's bad event
never fails another's. A caller that goes away (the client disconnected) does not cancel
the batch it is in.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence

from herald.core.errors import Unavailable
from herald.core.telemetry import get_logger
from herald.deliverability.domain import ProviderEvent, RecordedEvent
from herald.deliverability.service import EventRecorder

log = get_logger("herald.deliverability")

# Recordings in flight per process (pool connections they may hold). One: the calls that
# arrive during a recording make the next batch, so batches grow with the load, and two
# processes' transactions rarely wait on each other's locks (the suppression list, the
# list counts). B1 on a quiet machine: 1,014 events/s with 4, 1,315 with 2, 1,599 with 1
# (BENCHMARKS.md, "Bounce storm").
CONCURRENCY = 1
MAX_EVENTS = 500  # events per transaction
# Busy: how long a recording waits for more calls to join it... (longer makes bigger
# batches, but a provider keeps a bounded number of connections open: B1's 128 at 1,667
# calls/s fall behind once a call takes over 77 ms; 50 ms did, 20 ms was at the edge.)
LINGER_SECONDS = 0.01
LINGER_BELOW = 100  # ...unless this many events already wait

_Waiting = tuple[Sequence[ProviderEvent], "asyncio.Future[list[RecordedEvent]]"]


class EventCoalescer:
    """Records callers' events through one :class:`EventRecorder`, batching the calls
    that wait while :data:`CONCURRENCY` recordings are in flight."""

    def __init__(self, recorder: EventRecorder) -> None:
        self.recorder = recorder
        self._waiting: deque[_Waiting] = deque()
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def record(self, events: Sequence[ProviderEvent]) -> list[RecordedEvent]:
        """What became of ``events`` (as :meth:`EventRecorder.record`), once committed."""
        if not events:
            return []
        future: asyncio.Future[list[RecordedEvent]] = asyncio.get_running_loop().create_future()
        self._waiting.append((events, future))
        if self._running < CONCURRENCY:
            self._running += 1
            task = asyncio.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        # Shielded: a caller that goes away leaves the batch (and its other callers) alone.
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        try:
            busy = False  # a recording ran and calls arrived meanwhile
            while self._waiting:
                if busy and sum(len(events) for events, _ in self._waiting) < LINGER_BELOW:
                    await asyncio.sleep(LINGER_SECONDS)
                busy = True
                batch = [self._waiting.popleft()]
                size = len(batch[0][0])
                while self._waiting and size + len(self._waiting[0][0]) <= MAX_EVENTS:
                    item = self._waiting.popleft()
                    batch.append(item)
                    size += len(item[0])
                await self._record(batch)
        finally:
            self._running -= 1

    async def _record(self, batch: list[_Waiting]) -> None:
        events = [event for events, _ in batch for event in events]
        try:
            results = await self.recorder.record(events)
        except Unavailable as exc:
            for _, future in batch:
                _fail(future, exc)
            return
        except Exception as exc:  # noqa: BLE001 - handed to the callers, or retried per call
            if len(batch) == 1:
                _fail(batch[0][1], exc)
                return
            log.warning("a batch of provider events failed; recording its calls one by one")
            for events_of_call, future in batch:
                try:
                    found = await self.recorder.record(events_of_call)
                except Exception as call_exc:  # noqa: BLE001 - handed to its own caller
                    _fail(future, call_exc)
                else:
                    _succeed(future, found)
            return
        start = 0
        for events_of_call, future in batch:
            _succeed(future, results[start : start + len(events_of_call)])
            start += len(events_of_call)


def _succeed(future: asyncio.Future[list[RecordedEvent]], results: list[RecordedEvent]) -> None:
    if not future.done():
        future.set_result(results)


def _fail(future: asyncio.Future[list[RecordedEvent]], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
