"""Bulk test data: many subscribers in one ``COPY`` (thousands per second, not per minute)."""

from __future__ import annotations

import uuid

from herald.core.db import Database


async def copy_subscribers(
    db: Database, count: int, *, status: str = "confirmed", prefix: str = "reader"
) -> dict[str, uuid.UUID]:
    """Insert ``count`` subscribers ``{prefix}{n}@example.com``; their ids by address."""
    by_email = {f"{prefix}{n}@example.com": uuid.uuid4() for n in range(count)}
    records = [
        (subscriber_id, email, f"Reader {n}", status)
        for n, (email, subscriber_id) in enumerate(by_email.items())
    ]
    async with db.connection() as conn:
        await conn.copy_records_to_table(
            "subscriptions", records=records, columns=["id", "email", "name", "status"]
        )
    return by_email
