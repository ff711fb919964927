"""The only door to the ``deliveries`` table. One statement per queue primitive."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import NamedTuple
from uuid import UUID

from herald.core import sql, tracing
from herald.core.db import Connection
from herald.delivery.domain import ClaimedDelivery, DeliveryKind, Outcomes
from herald.email.message import EmailMessage

Q = sql.load("herald.delivery")


async def enqueue(
    conn: Connection,
    *,
    kind: DeliveryKind,
    message: EmailMessage,
    max_attempts: int,
    subscriber_id: UUID | None = None,
) -> int:
    """Queue one rendered message. Call inside the transaction of the change that causes it.
    The current span (the request's) is stored with it: the worker's spans link to it."""
    delivery_id: int = await conn.fetchval(
        Q["enqueue"],
        kind,
        message.recipient,
        subscriber_id,
        json.dumps(message.to_json()),
        max_attempts,
        tracing.current_traceparent(),
    )
    return delivery_id


async def claim(
    conn: Connection, *, limit: int, lease_seconds: float, lease_token: UUID, worker: str
) -> list[ClaimedDelivery]:
    rows = await conn.fetch(
        Q["claim"], limit, lease_seconds, lease_token, worker, tracing.enabled()
    )
    return [ClaimedDelivery.from_row(row) for row in rows]


class Recorded(NamedTuple):
    """Rows each fenced write touched (fewer than asked when a lease was lost)."""

    sent: int
    retried: int
    failed: int
    suppressed: int


async def record(conn: Connection, outcomes: Outcomes, lease_token: UUID) -> Recorded:
    """Write a batch's results in one transaction, fenced by the lease token."""
    counts = [0, 0, 0, 0]
    async with conn.transaction():
        if outcomes.sent:
            ids, message_ids = zip(*outcomes.sent, strict=True)
            status = await conn.execute(Q["mark_sent"], list(ids), list(message_ids), lease_token)
            counts[0] = _count(status)
        if outcomes.retry:
            ids, delays, errors = zip(*outcomes.retry, strict=True)
            status = await conn.execute(
                Q["schedule_retry"], list(ids), list(delays), list(errors), lease_token
            )
            counts[1] = _count(status)
        if outcomes.failed:
            ids, errors = zip(*outcomes.failed, strict=True)
            status = await conn.execute(Q["mark_failed"], list(ids), list(errors), lease_token)
            counts[2] = _count(status)
        if outcomes.suppressed:
            ids, reasons = zip(*outcomes.suppressed, strict=True)
            status = await conn.execute(Q["mark_suppressed"], list(ids), list(reasons), lease_token)
            counts[3] = _count(status)
    return Recorded(*counts)


def _count(status: str) -> int:
    """Rows of an ``UPDATE n`` command status."""
    return int(status.rsplit(" ", 1)[-1])


async def renew(
    conn: Connection, ids: Sequence[int], lease_token: UUID, lease_seconds: float
) -> set[int]:
    """Extend the lease on ``ids``; the ids this lease still holds."""
    if not ids:
        return set()
    rows = await conn.fetch(Q["renew_lease"], list(ids), lease_token, lease_seconds)
    return {row["id"] for row in rows}


async def release(conn: Connection, ids: Sequence[int], lease_token: UUID) -> int:
    """Hand rows back to the queue without counting an attempt (graceful shutdown)."""
    if not ids:
        return 0
    row = await conn.fetchrow(Q["release"], list(ids), lease_token)
    return int(row["released"]) if row else 0


async def status_counts(conn: Connection) -> dict[str, int]:
    rows = await conn.fetch(Q["status_counts"])
    return {row["status"]: int(row["n"]) for row in rows}


async def pending_counts(conn: Connection) -> dict[str, int]:
    """Rows still to send, by status (``queued``, ``sending``)."""
    rows = await conn.fetch(Q["pending_counts"])
    return {row["status"]: int(row["n"]) for row in rows}


async def pending_counts_capped(conn: Connection, cap: int) -> dict[str, int]:
    """:func:`pending_counts`, reading at most ``cap`` rows in all."""
    rows = await conn.fetch(Q["pending_counts_capped"], cap)
    return {row["status"]: int(row["n"]) for row in rows}


async def oldest_ready_age(conn: Connection) -> float:
    age: float = await conn.fetchval(Q["oldest_ready_age"])
    return age


async def take_tokens(conn: Connection, bucket: str, rate: float, count: int) -> float:
    """Take ``count`` tokens from the shared bucket; the balance (negative = debt)."""
    balance: float = await conn.fetchval(Q["take_tokens"], bucket, rate, float(count))
    return balance


async def return_tokens(conn: Connection, bucket: str, rate: float, count: int) -> None:
    """Give back ``count`` reserved but unused tokens."""
    await conn.execute(Q["return_tokens"], bucket, rate, float(count))
