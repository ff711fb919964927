"""Housekeeping: the hourly clean-up that workers run."""

from __future__ import annotations

import hashlib

from herald.composition import housekeeping
from herald.core.config import Settings
from herald.core.db import Database
from tests.support.newsletters import create_admin


async def test_expired_idempotency_keys_are_deleted_and_fresh_ones_kept(
    db: Database, settings: Settings
) -> None:
    user_id = await create_admin(db, settings)
    fingerprint = hashlib.sha256(b"form").digest()
    async with db.connection() as conn:
        await conn.executemany(
            "INSERT INTO idempotency_keys (user_id, key, request_hash, created_at)"
            " VALUES ($1, $2, $3, now() - make_interval(hours => $4))",
            [(user_id, "stale", fingerprint, 25), (user_id, "fresh", fingerprint, 23)],
        )
    done = await housekeeping.run_once(db, settings)
    assert done["expired_idempotency_keys_deleted"] == 1
    async with db.connection() as conn:
        kept = await conn.fetch("SELECT key FROM idempotency_keys")
    assert [row["key"] for row in kept] == ["fresh"]
