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
