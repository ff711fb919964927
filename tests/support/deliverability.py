"""Database fixtures and probes shared by the deliverability tests (the recorder, the
webhooks, bounces and refusals): a delivery already sent, test messages queued for
readers, and what the suppression list and the subscription hold afterwards."""

from __future__ import annotations

import uuid

from herald.core.db import Database
from herald.delivery import repository
from tests.support.queue import message_to


async def sent_delivery(
    db: Database, subscriber: uuid.UUID | None, recipient: str, message_id: str | None = None
) -> int:
    """A delivery of ``recipient`` the provider accepted (as ``message_id``, if given); its
    id."""
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


async def enqueue_to_readers(db: Database, readers: list[uuid.UUID]) -> list[int]:
    """A test message queued for each reader (``reader<n>@example.com``); the deliveries."""
    async with db.transaction() as conn:
        return [
            await repository.enqueue(
                conn,
                kind="test",
                message=message_to(f"reader{n}@example.com"),
                max_attempts=3,
                subscriber_id=reader,
            )
            for n, reader in enumerate(readers)
        ]


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
