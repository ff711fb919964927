"""The only door to ``email_events``."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from herald.core import sql
from herald.core.db import Connection
from herald.deliverability.domain import ProviderEvent

Q = sql.load("herald.deliverability")

# Two transactions that suppress several addresses each can deadlock on the counters the
# suppression list's triggers keep (a random slot per statement, 0022): the recorder runs
# its own transaction again when Postgres picks it as the victim.
Deadlock = asyncpg.DeadlockDetectedError


@dataclass(frozen=True, slots=True)
class Stored:
    """One event the batch stored (a replay has none)."""

    position: int  # 0-based, in the batch as given
    event_id: int  # email_events.id
    delivery_id: int | None
    subscriber_id: uuid.UUID | None
    address: str | None  # the normalised address it is about, when known
    listed: bool  # the address was suppressed before, for a reason other than unsubscribed
    suppressed: bool  # marked as having suppressed the address (an at-once kind)
    soft_bounces: int | None  # soft bounces in the window ending at it, itself included


async def record(
    conn: Connection,
    events: Sequence[ProviderEvent],
    recipients: Sequence[str],
    at_once: Sequence[bool],
    window: timedelta,
) -> list[Stored]:
    """Insert ``events`` (sorted by the caller by provider and event id), with their
    normalised ``recipients`` ('' for none) and whether the policy suppresses each at
    once, in one statement; the rows stored, in batch order (replays are left out)."""
    rows = await conn.fetch(
        Q["record_events"],
        [e.provider.value for e in events],
        [e.event_id for e in events],
        [e.kind.value for e in events],
        [e.occurred_at for e in events],
        list(recipients),
        [e.delivery_id for e in events],
        [e.message_id for e in events],
        [e.detail for e in events],
        list(at_once),
        window,
    )
    return [
        Stored(
            position=int(row["position"]) - 1,
            event_id=int(row["id"]),
            delivery_id=row["delivery_id"],
            subscriber_id=row["subscriber_id"],
            address=row["address"],
            listed=bool(row["listed"]),
            suppressed=bool(row["suppressed"]),
            soft_bounces=row["soft_bounces"],
        )
        for row in rows
    ]


async def mark_suppressed(conn: Connection, event_ids: Sequence[int]) -> None:
    if event_ids:
        await conn.execute(Q["mark_suppressed"], list(event_ids))


async def notify_many(conn: Connection, channel: str, payloads: Sequence[str]) -> None:
    if payloads:
        await conn.fetchval(Q["notify_many"], channel, list(payloads))
