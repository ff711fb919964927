"""Migrations: idempotent, reversible, safe when several processes run them at once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest
from structlog.testing import capture_logs

from herald.core import migrate
from herald.core.config import DatabaseSettings
from herald.core.db import Database, connect
from herald.core.errors import Unavailable
from tests.support.database import free_port, with_database
from tests.support.processes import herald_env, herald_process, wait_exit
from tests.support.schema import differences, schema_snapshot


async def tables(dsn: str) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {r["tablename"] for r in rows}
    finally:
        await conn.close()


async def fresh_database(admin_dsn: str, name: str) -> str:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(admin_dsn, name)


def test_cheap_head_check_agrees_with_alembic() -> None:
    assert migrate.script_heads() == {migrate.head_revision()}


async def test_upgrade_is_idempotent(database_url: str) -> None:
    assert await migrate.database_revisions(database_url) == migrate.script_heads()
    assert await migrate.upgrade_async(database_url) is False
    await asyncio.to_thread(migrate.upgrade, database_url)  # forced through Alembic: no-op
    assert await migrate.database_revisions(database_url) == migrate.script_heads()


def migration_chain() -> list[tuple[str, str | None]]:
    """(revision, parent) from the first migration to head; the history has no branches."""
    parents = migrate.script_revisions()
    children = {parent: revision for revision, parent in parents.items()}
    assert len(children) == len(parents), f"branched migration history: {parents}"
    chain: list[tuple[str, str | None]] = []
    parent: str | None = None
    while parent in children:
        chain.append((children[parent], parent))
        parent = children[parent]
    assert [r for r, _ in chain][-1:] == sorted(migrate.script_heads()), chain
    return chain


def assert_same_schema(expected: str, actual: str, what: str) -> None:
    assert actual == expected, f"{what}:\n" + differences(expected, actual, "expected", what)


def assert_empty_schema(snapshot: str, what: str) -> None:
    """Nothing but Alembic's empty version table is left."""
    lines = [line for line in snapshot.splitlines() if line and not line.startswith("-- ")]
    leftovers = [line for line in lines if "alembic_version" not in line]
    assert not leftovers, f"{what} leaves behind:\n" + "\n".join(leftovers)


async def test_downgrade_to_base_and_back(database_url: str) -> None:
    """upgrade → downgrade → upgrade: the schema after the round trip is the one a straight
    upgrade builds (compared on the whole catalog snapshot, tests/support/schema.py)."""
    straight = await schema_snapshot(database_url)
    await asyncio.to_thread(migrate.downgrade, database_url, "base")
    assert await tables(database_url) == {"alembic_version"}
    assert_empty_schema(await schema_snapshot(database_url), "downgrade to base")
    assert await migrate.upgrade_async(database_url) is True
    assert_same_schema(straight, await schema_snapshot(database_url), "after the round trip")


async def test_every_migration_downgrades_and_upgrades_again(
    pg_admin_dsn: str, database_url: str
) -> None:
    """Step by step from an empty database: each revision's downgrade restores exactly the
    schema before it, and upgrading again rebuilds exactly the same schema."""
    import uuid

    dsn = await fresh_database(pg_admin_dsn, f"herald_steps_{uuid.uuid4().hex[:8]}")
    try:
        chain = migration_chain()
        snapshots: dict[str, str] = {}
        for revision, parent in chain:
            await asyncio.to_thread(migrate.upgrade, dsn, revision)
            upgraded = await schema_snapshot(dsn)
            await asyncio.to_thread(migrate.downgrade, dsn, parent or "base")
            downgraded = await schema_snapshot(dsn)
            if parent is None:
                assert_empty_schema(downgraded, f"{revision}'s downgrade")
            else:
                assert_same_schema(snapshots[parent], downgraded, f"{revision}'s downgrade")
            await asyncio.to_thread(migrate.upgrade, dsn, revision)
            assert_same_schema(upgraded, await schema_snapshot(dsn), f"{revision} upgraded again")
            snapshots[revision] = upgraded
        straight = await schema_snapshot(database_url)  # the template: migrated to head at once
        assert_same_schema(straight, snapshots[chain[-1][0]], "head reached step by step")
    finally:
        admin = await asyncpg.connect(pg_admin_dsn)
        try:
            name = urlsplit(dsn).path.lstrip("/")
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def test_a_schema_newer_than_the_code_is_left_alone(database_url: str) -> None:
    """Rollback / rolling deploy: a newer release migrated the database to a revision this
    code has never heard of. Start-up and `herald migrate` warn and carry on instead of
    failing on Alembic's "Can't locate revision" (tests/e2e/test_migration_compat.py)."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("UPDATE alembic_version SET version_num = '9999_next_release'")
    finally:
        await conn.close()
    with capture_logs() as logs:
        assert await migrate.upgrade_async(database_url) is False
    assert await migrate.database_revisions(database_url) == {"9999_next_release"}
    [warning] = [e for e in logs if e["log_level"] == "warning"]
    assert "newer than this code" in warning["event"]
    assert warning["database_revisions"] == ["9999_next_release"]
    assert warning["code_head"] == sorted(migrate.script_heads())


async def test_concurrent_migrate_processes_apply_each_migration_once(
    pg_admin_dsn: str, tmp_path: Path
) -> None:
    import uuid

    dsn = await fresh_database(pg_admin_dsn, f"herald_migrate_{uuid.uuid4().hex[:8]}")
    env = herald_env(HERALD_DATABASE_URL=dsn)
    async with (
        herald_process("migrate", env=env, log_path=tmp_path / "a.log") as first,
        herald_process("migrate", env=env, log_path=tmp_path / "b.log") as second,
        herald_process("migrate", env=env, log_path=tmp_path / "c.log") as third,
    ):
        codes = [await wait_exit(p, 60) for p in (first, second, third)]
    logs = [(tmp_path / f"{n}.log").read_text() for n in "abc"]
    assert codes == [0, 0, 0], logs
    assert await migrate.database_revisions(dsn) == migrate.script_heads()
    assert sum("migrated to" in log for log in logs) >= 1
    assert "subscriptions" in await tables(dsn)


async def test_issues_published_before_0005_count_as_fanned_out(database_url: str) -> None:
    # Published under 0004, their deliveries were queued in the publishing transaction:
    # after the upgrade they must not wait for a fan-out that will never run.
    await asyncio.to_thread(migrate.downgrade, database_url, "0004")
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO newsletter_issues (id, title, html_content, text_content, status,"
            " published_at) VALUES (gen_random_uuid(), 'Old', 'h', 't', 'publishing', now()),"
            " (gen_random_uuid(), 'Older', 'h', 't', 'sent', now()),"
            " (gen_random_uuid(), 'Draft', 'h', 't', 'draft', NULL)"
        )
        await asyncio.to_thread(migrate.upgrade, database_url)
        rows = await conn.fetch(
            "SELECT status, fanout_done_at IS NOT NULL AS fanned_out FROM newsletter_issues"
        )
        index = await conn.fetchval(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'subscriptions_confirmed'"
        )
    finally:
        await conn.close()
    assert {(r["status"], r["fanned_out"]) for r in rows} == {
        ("publishing", True),
        ("sent", True),
        ("draft", False),
    }
    assert "INCLUDE (email)" in index


async def test_a_database_that_cannot_be_reached_is_one_line(database_url: str) -> None:
    """``herald migrate`` is often a deploy's first step: a wrong port or database name is
    ``Unavailable`` naming the cause, not asyncpg's traceback."""
    parts = urlsplit(database_url)
    closed_port = parts._replace(netloc=f"{parts.hostname}:{free_port()}").geturl()
    no_such_database = parts._replace(path="/herald_no_such_database").geturl()
    for dsn, cause in ((closed_port, ""), (no_such_database, "herald_no_such_database")):
        with pytest.raises(Unavailable) as refused:
            await migrate.database_revisions(dsn)
        assert str(refused.value).startswith("cannot connect to the database: ")
        assert cause in str(refused.value)


async def test_an_index_left_invalid_by_a_failed_build_is_built_again(
    pg_admin_dsn: str,
) -> None:
    """A concurrent build that timed out or was killed leaves an INVALID index of that name;
    ``IF NOT EXISTS`` alone would keep it for good, unused by the planner."""
    import uuid

    dsn = await fresh_database(pg_admin_dsn, f"herald_invalid_{uuid.uuid4().hex[:8]}")
    try:
        await asyncio.to_thread(migrate.upgrade, dsn, "0032")
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(
                "CREATE INDEX engagement_opens_window ON engagement_opens (opened_at)"
            )
            # What a failed CREATE INDEX CONCURRENTLY leaves behind.
            await conn.execute(
                "UPDATE pg_index SET indisvalid = false"
                " WHERE indexrelid = 'engagement_opens_window'::regclass"
            )
            await asyncio.to_thread(migrate.upgrade, dsn, "head")
            valid, definition = await conn.fetchrow(
                "SELECT i.indisvalid, pg_get_indexdef(i.indexrelid) FROM pg_index AS i"
                " WHERE i.indexrelid = 'engagement_opens_window'::regclass"
            )
        finally:
            await conn.close()
        assert valid
        assert "(opened_at, delivery_id) WHERE (NOT machine)" in definition
    finally:
        admin = await asyncpg.connect(pg_admin_dsn)
        try:
            name = urlsplit(dsn).path.lstrip("/")
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def test_the_pool_and_single_connections_refused_by_the_server_are_unavailable(
    database_url: str,
) -> None:
    """The same mapping as ``herald migrate``'s: a database that does not exist is a
    server's refusal (a PostgresError, not a network error), still "cannot connect"."""
    dsn = urlsplit(database_url)._replace(path="/herald_no_such_database").geturl()
    openings = (
        lambda: connect(dsn, DatabaseSettings()),
        lambda: Database.open(dsn, DatabaseSettings()),
    )
    for opening in openings:
        with pytest.raises(Unavailable, match=r"^cannot connect to the database: .*herald_no_su"):
            await opening()
