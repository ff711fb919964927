"""Every named SQL statement is prepared against the migrated schema.

This is Herald's stand-in for sqlx's compile-time query checking: a typo in a
column name, a wrong type or an ambiguous parameter fails CI here, not in
production on the first request that happens to run the statement.
"""

from __future__ import annotations

import asyncpg
import pytest

from herald.core import sql

QUERY_FILES = sql.all_query_files()
STATEMENTS = [
    pytest.param(path, name, id=f"{path.parent.name}/{path.name}:{name}")
    for path in QUERY_FILES
    for name in sql.parse(path.read_text(), source=str(path))
]


def test_every_feature_ships_its_queries() -> None:
    owners = {path.parent.name for path in QUERY_FILES}
    assert {"core", "subscriptions", "delivery", "email"} <= owners


@pytest.mark.parametrize(("path", "name"), STATEMENTS)
async def test_statement_prepares_against_the_migrated_schema(
    database_url: str, path: object, name: str
) -> None:
    from pathlib import Path

    assert isinstance(path, Path)
    statement = sql.parse(path.read_text(), source=str(path))[name]
    conn = await asyncpg.connect(database_url)
    try:
        prepared = await conn.prepare(statement)
        # Every parameter's type must be known to Postgres (no silent 'unknown').
        assert all(p.name != "unknown" for p in prepared.get_parameters())
    finally:
        await conn.close()
