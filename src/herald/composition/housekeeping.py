"""Periodic clean-up, run by worker processes (several may run it: each job is idempotent).

Expired confirmation tokens (after a grace period), expired sessions, old login
failures, idempotency keys past their 24 hours (``admin/idempotency.py``), background
jobs finished more than 30 days ago, and webhook messages (with their attempts) finished
more than 30 days ago.
"""

from __future__ import annotations

import asyncio
import contextlib

from herald.admin import idempotency
from herald.auth import repository as auth
from herald.core.config import Settings
from herald.core.db import Database
from herald.core.errors import Unavailable
from herald.core.telemetry import get_logger
from herald.jobs import repository as jobs
from herald.subscriptions import repository as subscriptions
from herald.webhooks import repository as webhooks

log = get_logger("herald.housekeeping")

# Expired confirmation tokens are kept this long, so a late click says "expired".
TOKEN_GRACE_SECONDS = 30 * 24 * 3600.0
# Failed logins matter for throttling within minutes; a day is kept for inspection.
FAILURES_KEPT_SECONDS = 24 * 3600.0
# A finished background job stays on record (what ran, by whom, with what outcome) this long.
JOBS_KEPT_SECONDS = 30 * 24 * 3600.0
# A finished webhook message (and its attempts: the endpoint's failure view) is kept this long;
# at most this many go per run, so a run never holds a long transaction.
WEBHOOK_MESSAGES_KEPT_DAYS = 30
WEBHOOK_MESSAGES_PER_RUN = 50_000


async def run_once(db: Database, settings: Settings) -> dict[str, int]:
    async with db.connection() as conn:
        done = {
            "expired_tokens_deleted": await subscriptions.delete_expired_tokens(
                conn, TOKEN_GRACE_SECONDS
            ),
            "expired_sessions_deleted": await auth.delete_expired_sessions(
                conn, settings.auth.session_idle_minutes * 60
            ),
            "old_login_failures_deleted": await auth.delete_old_failures(
                conn, FAILURES_KEPT_SECONDS
            ),
            "expired_idempotency_keys_deleted": await idempotency.delete_expired(conn),
            "old_jobs_deleted": await jobs.delete_finished(conn, JOBS_KEPT_SECONDS),
            "old_webhook_messages_deleted": await webhooks.delete_finished_messages(
                conn, WEBHOOK_MESSAGES_KEPT_DAYS, WEBHOOK_MESSAGES_PER_RUN
            ),
        }
    if any(done.values()):
        log.info("housekeeping", **done)
    return done


async def run(
    db: Database, settings: Settings, stop: asyncio.Event, interval: float = 3600.0
) -> None:
    while not stop.is_set():
        try:
            await run_once(db, settings)
        except Unavailable as exc:
            log.warning("housekeeping skipped: database unavailable", error=exc.message)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
