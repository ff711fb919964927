"""Migrations: idempotent, reversible, safe when several processes run them at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

from herald.core import migrate
from tests.support.database import with_database
from tests.support.processes import herald_env, herald_process, wait_exit


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


async def test_downgrade_to_base_and_back(database_url: str) -> None:
    before = await tables(database_url)
    await asyncio.to_thread(migrate.downgrade, database_url, "base")
    assert await tables(database_url) == {"alembic_version"}
    assert await migrate.upgrade_async(database_url) is True
    assert await tables(database_url) == before


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
