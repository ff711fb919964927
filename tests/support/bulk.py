"""Bulk test data: many subscribers in one ``COPY`` (thousands per second, not per minute)."""

from __future__ import annotations

import uuid

from herald.core.db import Database

CHUNK = 20_000


async def copy_subscribers(
    db: Database, count: int, *, status: str = "confirmed", prefix: str = "reader"
) -> dict[str, uuid.UUID]:
    """Insert ``count`` subscribers ``{prefix}{n}@example.com``; their ids by address."""
    by_email = {f"{prefix}{n}@example.com": uuid.uuid4() for n in range(count)}
    records = [
        (subscriber_id, email, f"Reader {n}", status)
        for n, (email, subscriber_id) in enumerate(by_email.items())
    ]
    # Test data, not a request: no statement timeout (each row feeds the counting triggers
    # and five indexes, one a GIN over trigrams: 200,000 rows outlast 15 s on a loaded
    # machine), and chunks, so no single call outlasts the client's command timeout.
    async with db.transaction() as conn:
        await conn.execute("SET LOCAL statement_timeout = 0")
        for start in range(0, len(records), CHUNK):
            await conn.copy_records_to_table(
                "subscriptions",
                records=records[start : start + CHUNK],
                columns=["id", "email", "name", "status"],
                timeout=600,
            )
    return by_email
