"""What the issue pages read of ``deliveries``: a subscriber's history and pages of an
issue's recipients (``queries.sql``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from herald.core import sql
from herald.core.db import Connection
from herald.delivery.domain import DeliveryStatus

Q = sql.load("herald.issues")


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    id: int
    kind: str
    status: DeliveryStatus
    attempts: int
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    updated_at: datetime
    issue_id: uuid.UUID | None
    issue_title: str | None


async def subscriber_history(
    conn: Connection, subscriber_id: uuid.UUID, limit: int = 200
) -> list[HistoryEntry]:
    rows = await conn.fetch(Q["subscriber_history"], subscriber_id, limit)
    return [
        HistoryEntry(
            r["id"],
            r["kind"],
            DeliveryStatus(r["status"]),
            r["attempts"],
            r["last_error"],
            r["created_at"],
            r["sent_at"],
            r["updated_at"],
            r["issue_id"],
            r["issue_title"],
        )
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    id: int
    recipient: str
    subscriber_id: uuid.UUID | None
    status: DeliveryStatus
    attempts: int
    last_error: str | None
    sent_at: datetime | None
    updated_at: datetime


async def recent_deliveries(
    conn: Connection,
    issue_id: uuid.UUID,
    status: DeliveryStatus | None = None,
    limit: int = 100,
    before: int | None = None,
) -> list[DeliveryRow]:
    """A page of an issue's deliveries (of ``status``, or all), newest first; ``before``:
    the previous page's last id."""
    statuses = [status.value] if status is not None else [s.value for s in DeliveryStatus]
    rows = await conn.fetch(Q["recent_deliveries"], issue_id, statuses, limit, before)
    return [
        DeliveryRow(
            r["id"],
            r["recipient"],
            r["subscriber_id"],
            DeliveryStatus(r["status"]),
            r["attempts"],
            r["last_error"],
            r["sent_at"],
            r["updated_at"],
        )
        for r in rows
    ]
