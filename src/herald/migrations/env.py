"""Alembic environment: runs Herald's explicit-SQL migrations over asyncpg.

Every run takes a session-level advisory lock before Alembic reads the current
revision, so two ``herald migrate`` processes started at once apply each migration
exactly once: the second waits, then finds nothing to do. Session-level, not
transaction-scoped: a migration's ``autocommit_block`` (``CREATE INDEX CONCURRENTLY``,
0010) commits mid-run, which would release a transaction's lock and let the second
process start the same migrations. The lock goes with the connection, at the end.
It is taken by polling outside any transaction: a process blocked in a transaction
would hold a snapshot that the first one's ``CREATE INDEX CONCURRENTLY`` waits for
(a deadlock).
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
from alembic import context
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from herald.core.migrate import MIGRATION_LOCK_KEY
from herald.migrations import _await

LOCK_POLL_SECONDS = 0.2

config = context.config


def _lock(connection: Connection) -> None:
    driver = connection.connection.driver_connection
    assert driver is not None
    while not _await(
        driver.fetchval("SELECT pg_try_advisory_lock($1::bigint)", MIGRATION_LOCK_KEY)
    ):
        time.sleep(LOCK_POLL_SECONDS)  # this process has nothing else to do meanwhile


def _run(connection: Connection) -> None:
    _lock(connection)
    context.configure(connection=connection, target_metadata=None, transaction_per_migration=False)
    with context.begin_transaction():
        context.run_migrations()


async def _main() -> None:
    dsn = config.attributes["dsn"]

    async def creator() -> asyncpg.Connection[asyncpg.Record]:
        return await asyncpg.connect(
            dsn, timeout=10, server_settings={"application_name": "herald-migrate"}
        )

    engine = create_async_engine("postgresql+asyncpg://", async_creator=creator)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("Herald's migrations run online only (use `herald migrate`)")
asyncio.run(_main())
