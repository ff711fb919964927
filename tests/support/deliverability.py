"""Database fixtures and probes shared by the deliverability tests (the recorder, the
webhooks): a delivery already sent, and what the suppression list and the subscription
hold afterwards."""

from __future__ import annotations

import uuid

from herald.core.db import Database


async def sent_delivery(
    db: Database, subscriber: uuid.UUID | None, recipient: str, message_id: str
) -> int:
    """A delivery of ``recipient`` the provider accepted as ``message_id``; its id."""
    async with db.connection() as conn:
        delivery_id: int = await conn.fetchval(
            "INSERT INTO deliveries (kind, recipient, subscriber_id, status, max_attempts,"
            " provider_message_id, sent_at) VALUES ('test', $1, $2, 'sent', 5, $3, now())"
            " RETURNING id",
            recipient,
            subscriber,
            message_id,
        )
    return delivery_id


async def suppression(db: Database, email: str) -> tuple[str, str] | None:
    """The suppression of ``email``: (reason, source), or None when it is not listed."""
    async with db.connection() as conn:
        row = await conn.fetchrow(
            "SELECT reason, source FROM suppressions WHERE address_key = herald_address_key($1)",
            email,
        )
    return (row["reason"], row["source"]) if row else None


async def subscription_status(db: Database, subscriber: uuid.UUID) -> str:
    async with db.connection() as conn:
        found: str = await conn.fetchval(
            "SELECT status FROM subscriptions WHERE id = $1", subscriber
        )
    return found
