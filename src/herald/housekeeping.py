"""Periodic clean-up, run by worker processes (several may run it: each job is idempotent)."""

from __future__ import annotations

import asyncio
import contextlib

from herald.core.db import Database
from herald.core.errors import Unavailable
from herald.core.telemetry import get_logger
from herald.subscriptions import repository as subscriptions

log = get_logger("herald.housekeeping")

# Expired confirmation tokens are kept this long, so a late click says "expired".
TOKEN_GRACE_SECONDS = 30 * 24 * 3600.0


async def run_once(db: Database) -> dict[str, int]:
    async with db.connection() as conn:
        tokens = await subscriptions.delete_expired_tokens(conn, TOKEN_GRACE_SECONDS)
    if tokens:
        log.info("housekeeping", expired_tokens_deleted=tokens)
    return {"expired_tokens_deleted": tokens}


async def run(db: Database, stop: asyncio.Event, interval: float = 3600.0) -> None:
    while not stop.is_set():
        try:
            await run_once(db)
        except Unavailable as exc:
            log.warning("housekeeping skipped: database unavailable", error=exc.message)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
