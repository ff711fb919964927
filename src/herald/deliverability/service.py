"""The recorder: every adapter's events stored once, matched, and run through the policy.

``EventRecorder.record(events)`` stores a batch in a transaction of its own;
``record_in(conn, events)`` in the caller's (an adapter that writes something else in the
same transaction). Per batch: one statement stores every event that is new
(``queries.sql``'s ``record_events``: deduplicated by the provider's event id, matched to
its delivery and reader, soft bounces counted), then, only for the events the policy
says suppress, one ``suppressions`` statement per address (which unsubscribes its
subscription in the same statement: the suppression list's invariant) and, for soft
bounces past the limit, one statement marking them. A replay costs the one statement and
changes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from herald.core import live
from herald.core.db import Connection, Database
from herald.core.errors import ValidationError
from herald.core.telemetry import get_logger
from herald.deliverability import metrics, repository
from herald.deliverability.domain import EventKind, ProviderEvent, RecordedEvent
from herald.deliverability.policy import Policy
from herald.subscriptions.domain import SubscriberEmail, SuppressionReason
from herald.suppressions import repository as suppressions
from herald.suppressions.domain import source_text

log = get_logger("herald.deliverability")

DEADLOCK_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class _Suppression:
    position: int
    address: str
    reason: SuppressionReason
    source: str


def normalised_recipient(raw: str) -> str:
    """The event's recipient as Herald stores addresses, or '' when it is none or invalid
    (then the delivery's recipient stands in, if the event found its delivery)."""
    if not raw:
        return ""
    try:
        return SubscriberEmail.parse(raw).value
    except ValidationError:
        return ""


class EventRecorder:
    """Stores provider events and applies :class:`~herald.deliverability.policy.Policy`."""

    def __init__(self, db: Database, policy: Policy) -> None:
        self._db = db
        self.policy = policy

    async def record(self, events: Sequence[ProviderEvent]) -> list[RecordedEvent]:
        """Store ``events`` in one transaction; what became of each, in the given order."""
        if not events:
            return []
        results = await self._record(events)
        # One line per batch (the webhook's successful calls are logged at debug level).
        log.info(
            "provider events recorded",
            events=len(results),
            stored=sum(1 for r in results if r.stored),
            suppressed=sum(1 for r in results if r.suppressed),
        )
        return results

    async def _record(self, events: Sequence[ProviderEvent]) -> list[RecordedEvent]:
        if not any(self.policy.may_suppress(event.kind) for event in events):
            # Nothing to suppress: the one INSERT is its own transaction (no BEGIN/COMMIT
            # round trips for a storm of deliveries or blocks).
            async with self._db.connection() as conn:
                return await self.record_in(conn, events)
        for attempt in range(1, DEADLOCK_ATTEMPTS + 1):
            try:
                async with self._db.transaction() as conn:
                    return await self.record_in(conn, events)
            except repository.Deadlock:
                if attempt == DEADLOCK_ATTEMPTS:
                    raise
                log.info("deliverability events deadlocked; recording them again", attempt=attempt)
                await asyncio.sleep(0.02 * attempt)
        raise AssertionError("unreachable")  # the loop returns or raises

    async def record_in(
        self, conn: Connection, events: Sequence[ProviderEvent]
    ) -> list[RecordedEvent]:
        """Store ``events`` in the caller's transaction (``conn`` in one whenever an event
        may suppress: the event and its suppression commit together)."""
        if not events:
            return []
        # One row per provider event id (the first wins, a later copy is a replay), in
        # the order of the unique index, so concurrent batches lock it in one order.
        first: dict[tuple[str, str], int] = {}
        for position, event in enumerate(events):
            first.setdefault((event.provider.value, event.event_id), position)
        order = sorted(first.items())
        batch = [events[position] for _, position in order]
        stored = await repository.record(
            conn,
            batch,
            [normalised_recipient(event.recipient) for event in batch],
            [self.policy.at_once(event.kind) is not None for event in batch],
            self.policy.soft_bounce_window,
        )
        suppressions_due: list[_Suppression] = []
        soft_marked: list[int] = []
        by_position: dict[int, repository.Stored] = {}
        for row in stored:
            event = batch[row.position]
            original = order[row.position][1]
            by_position[original] = row
            if row.address is None or row.listed:
                continue
            reason = self.policy.decide(event.kind, row.soft_bounces or 0)
            if reason is None:
                continue
            if event.kind is EventKind.SOFT_BOUNCE:
                soft_marked.append(row.event_id)
            elif not row.suppressed:
                continue
            source = source_text(self.policy.source(event.provider.value, event.kind))
            suppressions_due.append(_Suppression(original, row.address, reason, source))
        suppressed = await self._suppress(conn, suppressions_due)
        await repository.mark_suppressed(conn, soft_marked)
        # Counted once the statements are done (a deadlock raises before this point).
        self._count(events, by_position)
        for item in suppressions_due:
            if item.position in suppressed:
                metrics.SUPPRESSIONS.labels(item.reason.value).inc()
        return [
            _result(event, by_position.get(position), position in suppressed)
            for position, event in enumerate(events)
        ]

    async def _suppress(self, conn: Connection, due: list[_Suppression]) -> set[int]:
        """Suppress each address once, in one statement (``add_many``); the positions (in
        the caller's batch) of the events that did."""
        first: dict[str, _Suppression] = {}
        for item in due:
            first.setdefault(item.address.lower(), item)
        if not first:
            return set()
        rows = [(i.address, i.reason, i.source) for _, i in sorted(first.items())]
        added = await suppressions.add_many(conn, rows)
        unsubscribed = [a.unsubscribed for a in added if a.unsubscribed is not None]
        events = [live.event("subscriber.unsubscribed", subscriber_id=s) for s in unsubscribed]
        await repository.notify_many(conn, live.CHANNEL, events)
        log.debug("addresses suppressed", count=len(first))
        return {item.position for item in first.values()}

    @staticmethod
    def _count(events: Sequence[ProviderEvent], stored: dict[int, repository.Stored]) -> None:
        for position, event in enumerate(events):
            provider = event.provider.value
            if position not in stored:
                metrics.REPLAYS.labels(provider).inc()
                continue
            metrics.EVENTS.labels(provider, event.kind.value).inc()
            if Policy.alerts(event.kind):
                metrics.BLOCKED.labels(provider).inc()


def _result(event: ProviderEvent, row: repository.Stored | None, suppressed: bool) -> RecordedEvent:
    if row is None:
        return RecordedEvent(
            event, stored=False, delivery_id=None, subscriber_id=None, suppressed=False
        )
    return RecordedEvent(
        event,
        stored=True,
        delivery_id=row.delivery_id,
        subscriber_id=row.subscriber_id,
        suppressed=suppressed,
    )
