"""Metrics for a Herald process: the ``/metrics`` listener and the gauge timer.

The queue and issue gauges cost a query each, so they are computed on a timer, not per
scrape, and by *one* process of the whole deployment: each process with metrics enabled
tries a session-level advisory lock on a connection of its own every interval; the one
that holds it refreshes the gauges. When that process dies its connection closes, the
lock goes with it, and another process takes over at its next tick. That connection goes
to Postgres itself (the direct URL): through a pooler in transaction mode every process
would "hold" the lock on a shared server connection, and it would outlive its holder.
"""

from __future__ import annotations

import asyncio
import contextlib

from herald.core.config import Settings
from herald.core.db import Connection, connect, try_advisory_lock
from herald.core.errors import HeraldError, Unavailable
from herald.core.metrics import MetricsServer, start_metrics_server
from herald.core.telemetry import get_logger
from herald.core.waiting import sleep_or_stop
from herald.delivery import metrics as delivery_metrics
from herald.issues import metrics as issue_metrics

log = get_logger("herald.metrics")

# pg_advisory_lock key: "herald-gauges" folded into a bigint (any fixed value works).
GAUGE_LOCK_KEY = 0x6865_7261_6C64_6767


def start_listener(settings: Settings) -> MetricsServer | None:
    """The ``/metrics`` listener of this command, when ``HERALD_METRICS__PORT`` is set."""
    port = settings.metrics.port
    if port is None:
        return None
    try:
        server = start_metrics_server(settings.metrics.host, port)
    except OSError as exc:
        raise HeraldError(
            f"the metrics listener could not start on {settings.metrics.host}:{port}: "
            f"{exc.strerror or exc}"
        ) from exc
    log.info("metrics listening", host=settings.metrics.host, port=server.port)
    return server


class ProcessMetrics:
    """A single process's metrics: its listener and its share in the gauge election."""

    def __init__(self, server: MetricsServer, gauges: asyncio.Task[None]) -> None:
        self.server = server
        self._gauges = gauges

    async def close(self) -> None:
        self._gauges.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._gauges
        self.server.close()


def start_for_process(settings: Settings, dsn: str, stop: asyncio.Event) -> ProcessMetrics | None:
    """``up``/``serve``/``worker``: listen and take part in the gauge election (or None)."""
    server = start_listener(settings)
    if server is None:
        return None
    return ProcessMetrics(server, asyncio.create_task(run_gauges(dsn, settings, stop)))


async def refresh_all(conn: Connection) -> None:
    await delivery_metrics.refresh_gauges(conn)
    await issue_metrics.refresh_gauges(conn)


def reset_all() -> None:
    delivery_metrics.reset_gauges()
    issue_metrics.reset_gauges()


async def run_gauges(dsn: str, settings: Settings, stop: asyncio.Event) -> None:
    """Every interval: hold (or try to take) the gauge lock; refresh the gauges if held.

    A process that loses the lock (its connection broke: another process may have taken
    over) drops the values it exported, so a stale queue age never outlives its leader."""
    interval = settings.metrics.gauge_interval_seconds
    conn: Connection | None = None
    leader = False
    try:
        while not stop.is_set():
            try:
                if conn is None or conn.is_closed():
                    if leader:
                        reset_all()
                    conn, leader = await connect(dsn, settings.db, "herald-metrics"), False
                leader = leader or await try_advisory_lock(conn, GAUGE_LOCK_KEY)
                if leader:
                    await refresh_all(conn)
            except (Unavailable, OSError) as exc:
                log.warning("metrics gauges not refreshed: database unavailable", error=str(exc))
                await _discard(conn)
                conn, leader = None, _reset_if(leader)
            except Exception:
                log.exception("metrics gauges not refreshed")
                await _discard(conn)
                conn, leader = None, _reset_if(leader)
            await sleep_or_stop(stop, interval)
    finally:
        await _discard(conn)


def _reset_if(leader: bool) -> bool:
    """After losing the connection (and so the lock): reset what was exported; not leader."""
    if leader:
        reset_all()
    return False


async def _discard(conn: Connection | None) -> None:
    if conn is not None:
        with contextlib.suppress(Exception):
            await conn.close(timeout=2)
