"""Apply Alembic migrations programmatically (``herald migrate``, ``herald up``, tests).

Every process start checks the schema; importing Alembic (and SQLAlchemy) costs
about two seconds on a small machine, so the common case — the database is
already at head — is answered with one query and a look at the migration files,
and Alembic is only loaded when there is something to do.

A database at a revision this code does not know was migrated by a newer release
(a rollback, or old and new processes side by side during a rolling deploy):
start-up and ``herald migrate`` leave it alone with a warning instead of failing
on Alembic's "Can't locate revision", because migrations are expand/contract
(docs/MIGRATIONS.md) and the previous release's code works on the newer schema.
"""

from __future__ import annotations

import asyncio
import re
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg

from herald.core import sql
from herald.core.db import CONNECT_ERRORS, cannot_connect
from herald.core.telemetry import get_logger

if TYPE_CHECKING:
    from alembic.config import Config

QUERIES = sql.load("herald.core")
log = get_logger("herald.migrate")

# Arbitrary, fixed: every Herald process serialises migrations on this advisory lock.
MIGRATION_LOCK_KEY = 7_204_183_551

_REVISION = re.compile(r"^revision\s*=\s*[\"']([^\"']+)[\"']", re.MULTILINE)
_DOWN_REVISION = re.compile(r"^down_revision\s*=\s*(?:[\"']([^\"']+)[\"']|None)", re.MULTILINE)


def versions_dir() -> Path:
    return Path(str(resources.files("herald.migrations"))) / "versions"


def script_revisions() -> dict[str, str | None]:
    """Every revision in the migration files with its parent (no Alembic import)."""
    parents: dict[str, str | None] = {}
    for path in versions_dir().glob("*.py"):
        text = path.read_text(encoding="utf-8")
        revision = _REVISION.search(text)
        down = _DOWN_REVISION.search(text)
        if revision is None or down is None:
            raise RuntimeError(f"{path.name}: cannot read revision/down_revision")
        parents[revision.group(1)] = down.group(1) or None
    return parents


def script_heads() -> set[str]:
    """Head revisions read straight from the migration files (no Alembic import)."""
    parents = script_revisions()
    return set(parents) - {p for p in parents.values() if p}


async def database_revisions(dsn: str) -> set[str]:
    try:
        conn = await asyncpg.connect(dsn, timeout=10)
    except CONNECT_ERRORS as exc:
        # ``herald migrate`` is often the first thing a deploy runs: a wrong host, port or
        # password must read as one line, not as asyncpg's traceback.
        raise cannot_connect(exc) from exc
    try:
        if not await conn.fetchval(QUERIES["schema_versioned"]):
            return set()
        return {row[0] for row in await conn.fetch(QUERIES["schema_revisions"])}
    finally:
        await conn.close()


def alembic_config(dsn: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(str(resources.files("herald.migrations")))))
    cfg.attributes["dsn"] = dsn
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(""))
    head = script.get_current_head()
    if head is None:
        raise RuntimeError("no migrations found")
    return head


def upgrade(dsn: str, revision: str = "head") -> None:
    """Bring the database at ``dsn`` to ``revision``. Idempotent and safe to run concurrently."""
    from alembic import command

    command.upgrade(alembic_config(dsn), revision)


def downgrade(dsn: str, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(dsn), revision)


async def upgrade_async(dsn: str, revision: str = "head") -> bool:
    """Upgrade unless already at head; True when Alembic had to run.

    A database at a revision unknown to this code (a newer release migrated it) is
    left as it is, with a warning, and counts as up to date.
    """
    if revision == "head":
        current = await database_revisions(dsn)
        heads = script_heads()
        if current == heads:
            return False
        unknown = current - set(script_revisions())
        if unknown:
            log.warning(
                "database schema is newer than this code: not migrating; a newer release "
                "migrated it, and its migrations keep the previous release working "
                "(docs/MIGRATIONS.md)",
                database_revisions=sorted(current),
                code_head=sorted(heads),
            )
            return False
    # Alembic is synchronous and env.py runs its own event loop: give it a thread.
    await asyncio.to_thread(upgrade, dsn, revision)
    return True
