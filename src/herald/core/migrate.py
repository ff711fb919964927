"""Apply Alembic migrations programmatically (``herald migrate``, ``herald up``, tests)."""

from __future__ import annotations

import asyncio
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

# Arbitrary, fixed: every Herald process serialises migrations on this advisory lock.
MIGRATION_LOCK_KEY = 7_204_183_551


def alembic_config(dsn: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(str(resources.files("herald.migrations")))))
    cfg.attributes["dsn"] = dsn
    return cfg


def head_revision() -> str:
    script = ScriptDirectory.from_config(alembic_config(""))
    head = script.get_current_head()
    if head is None:
        raise RuntimeError("no migrations found")
    return head


def upgrade(dsn: str, revision: str = "head") -> None:
    """Bring the database at ``dsn`` to ``revision``. Idempotent and safe to run concurrently."""
    command.upgrade(alembic_config(dsn), revision)


def downgrade(dsn: str, revision: str) -> None:
    command.downgrade(alembic_config(dsn), revision)


async def upgrade_async(dsn: str, revision: str = "head") -> None:
    # Alembic is synchronous and env.py runs its own event loop: give it a thread.
    await asyncio.to_thread(upgrade, dsn, revision)
