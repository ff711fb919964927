"""The design in force, cached per process: no query per email or per request.

Every process keeps the design row it read last (one :class:`DesignCache` per database) and
checks the row's ``version`` at most every :data:`CHECK_SECONDS` — one tiny query — reading
the whole row again only when the version moved. So a change made in the admin reaches every
web process and worker within a few seconds, and the process that made it at once
(:meth:`DesignCache.forget`). A worker asks before each batch it renders: a send in progress
renders the batches after the change with the new design (its readers may get either).
"""

from __future__ import annotations

import asyncio
import time
from weakref import WeakKeyDictionary

from herald.core.config import Settings
from herald.core.db import Connection, Database
from herald.design import repository
from herald.design.domain import Design, DesignRow, design_of
from herald.email.layout import Branding

CHECK_SECONDS = 2.0


class DesignCache:
    def __init__(self, db: Database, check_seconds: float = CHECK_SECONDS) -> None:
        self._db = db
        self._check_seconds = check_seconds
        self._row: DesignRow | None = None
        self._checked = float("-inf")
        self._lock: asyncio.Lock | None = None

    def forget(self) -> None:
        """Check the version at the next read (this process just changed the design)."""
        self._checked = float("-inf")

    async def row(self) -> DesignRow:
        row = self._row
        if row is not None and time.monotonic() - self._checked < self._check_seconds:
            return row
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # one check at a time, whatever the number of callers
            row = self._row
            if row is not None and time.monotonic() - self._checked < self._check_seconds:
                return row
            async with self._db.connection() as conn:
                if row is None or await repository.version(conn) != row.version:
                    row = await repository.design(conn)
            self._row, self._checked = row, time.monotonic()
            return row

    async def design(self, settings: Settings) -> Design:
        """What emails are made with now: the configured defaults under the admin's values."""
        return design_of(
            await self.row(), Branding.from_settings(settings), settings.public_base_url
        )


_caches: WeakKeyDictionary[Database, DesignCache] = WeakKeyDictionary()


def design_cache(db: Database) -> DesignCache:
    """This process's cache of the design stored in ``db``."""
    cache = _caches.get(db)
    if cache is None:
        cache = _caches[db] = DesignCache(db)
    return cache


async def current_design(db: Database, settings: Settings) -> Design:
    return await design_cache(db).design(settings)


async def design_in(conn: Connection, settings: Settings) -> Design:
    """The design as ``conn`` sees it: one query, for a job step that holds a connection but
    no :class:`Database` (it reads the design once per step)."""
    row = await repository.design(conn)
    return design_of(row, Branding.from_settings(settings), settings.public_base_url)
