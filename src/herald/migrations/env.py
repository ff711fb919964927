"""Alembic environment: runs Herald's explicit-SQL migrations over asyncpg.

Every run takes a transaction-scoped advisory lock before Alembic reads the
current revision, so two ``herald migrate`` processes started at once apply each
migration exactly once: the second waits, then finds nothing to do.
"""

from __future__ import annotations

import asyncio

import asyncpg
from alembic import context
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from herald.core.migrate import MIGRATION_LOCK_KEY

config = context.config


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=None, transaction_per_migration=False)
    with context.begin_transaction():
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")
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
