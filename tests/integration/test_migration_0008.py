"""0008: every user from before the migration is an active admin, and so is one created
by release N-1's INSERT (which names no role)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from herald.core import migrate


async def test_existing_users_become_active_admins(database_url: str) -> None:
    await asyncio.to_thread(migrate.downgrade, database_url, "0007")
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO users (id, username, password_hash)"
            " VALUES (gen_random_uuid(), 'first', 'x'), (gen_random_uuid(), 'second', 'y')"
        )
        await asyncio.to_thread(migrate.upgrade, database_url)
        # Release N-1's insert_user, run on the new schema.
        await conn.execute(
            "INSERT INTO users (id, username, password_hash)"
            " VALUES (gen_random_uuid(), 'third', 'z')"
        )
        rows = await conn.fetch("SELECT username, role, disabled_at FROM users ORDER BY username")
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("UPDATE users SET role = 'owner' WHERE username = 'first'")
    finally:
        await conn.close()
    assert [(r["username"], r["role"], r["disabled_at"]) for r in rows] == [
        ("first", "admin", None),
        ("second", "admin", None),
        ("third", "admin", None),
    ]
