"""Herald's Alembic migrations, written as explicit SQL.

Each migration calls :func:`run_sql` with a script of several statements.
SQLAlchemy's asyncpg adapter prepares every statement (one command each), so the
script goes straight to the asyncpg connection's simple-query ``execute``,
which runs a multi-statement script inside the migration's transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from alembic import op
from sqlalchemy.util import concurrency

_await: Callable[[Awaitable[Any]], Any] = (
    getattr(concurrency, "await_", None) or concurrency.await_only
)

LOCK_TIMEOUT = "SET LOCAL lock_timeout = '5s';"


def run_sql(script: str) -> None:
    """Run a multi-statement SQL script on the migration's connection."""
    driver_connection = op.get_bind().connection.driver_connection
    assert driver_connection is not None, "migrations need a live asyncpg connection"
    _await(driver_connection.execute(script))


def _fetchval(query: str, *args: Any) -> Any:
    driver_connection = op.get_bind().connection.driver_connection
    assert driver_connection is not None, "migrations need a live asyncpg connection"
    return _await(driver_connection.fetchval(query, *args))


def create_indexes_concurrently(*indexes: tuple[str, str]) -> None:
    """``CREATE INDEX CONCURRENTLY`` for each ``(name, "ON table …")``, in an autocommit
    block (it cannot run in a transaction), so writes go on during the builds.

    A build that failed earlier (its lock wait over ``lock_timeout``, a cancelled or
    killed ``herald migrate``) leaves an INVALID index of that name behind, which
    ``IF NOT EXISTS`` alone would keep for good while the migration counts as done: the
    planner never uses it. Such a leftover is dropped and built again."""
    with op.get_context().autocommit_block():
        run_sql("SET lock_timeout = '5s'")  # SET LOCAL means nothing outside a transaction
        for name, definition in indexes:
            invalid = _fetchval(
                "SELECT NOT i.indisvalid FROM pg_index AS i"
                " WHERE i.indexrelid = to_regclass($1::text)",
                name,
            )
            if invalid:
                run_sql(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            run_sql(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} {definition}")
