"""The migrated schema is the committed one: tests/integration/schema_snapshot.txt.

The snapshot is read from the catalog of a freshly migrated database
(tests/support/schema.py), so it shows in review what a migration really changes —
columns, defaults, constraints, indexes, triggers, function bodies — and a migration
that changes the schema without its snapshot (or the other way round) fails here.
After writing or changing a migration, regenerate it and commit the difference:

    HERALD_UPDATE_SCHEMA_SNAPSHOT=1 .venv/bin/pytest tests/integration/test_schema_snapshot.py
"""

from __future__ import annotations

from tests.support.schema import (
    SNAPSHOT,
    UPDATE_ENV,
    differences,
    schema_snapshot,
    update_requested,
)


async def test_the_migrated_schema_matches_the_committed_snapshot(database_url: str) -> None:
    actual = await schema_snapshot(database_url)  # a clone of the database migrated to head
    if update_requested():
        SNAPSHOT.write_text(actual, encoding="utf-8")
        return
    expected = SNAPSHOT.read_text(encoding="utf-8") if SNAPSHOT.exists() else ""
    relative = SNAPSHOT.relative_to(SNAPSHOT.parents[2])
    assert actual == expected, (
        f"the migrated schema differs from {relative}. If the migration is meant to change "
        f"the schema, regenerate the snapshot and commit it with the migration:\n"
        f"    {UPDATE_ENV}=1 .venv/bin/pytest tests/integration/test_schema_snapshot.py\n\n"
        + differences(expected, actual, f"{relative} (committed)", "migrated database")
    )
