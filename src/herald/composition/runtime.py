"""Process lifecycles: what ``herald up``, ``serve`` and ``worker`` run.

One shape for all three: resolve the database (starting the embedded Postgres
when no URL is configured), apply pending migrations (on the direct URL when a
pooler stands in front: ``DatabaseUrls``), open one pool, run the
web server and/or the delivery worker until SIGTERM/SIGINT, then drain:
readiness turns 503 (and the web server keeps serving for
``HERALD_SHUTDOWN_DELAY_SECONDS``, 0 by default), it finishes in-flight requests, the worker
stops claiming and finishes or releases its batch, and the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import uvicorn

from herald.core import tracing
from herald.core.config import Settings
from herald.core.db import Database, ensure_database
from herald.core.embedded_pg import EmbeddedPostgres
from herald.core.errors import HeraldError
from herald.core.live import CLOSE_ON_DRAIN_SECONDS, LiveHub
from herald.core.telemetry import get_logger

if TYPE_CHECKING:
    from herald.email.message import EmailProvider

log = get_logger("herald.runtime")


def exposure_warning(settings: Settings) -> str | None:
    """What to say when a development server listens beyond this machine, else None.

    Development mode serves the API reference (/docs, /openapi.json) to anyone and the
    email outbox (/dev/outbox: confirmation links, unsubscribe tokens) to signed-in admins
    and local clients; on a network address that must not happen silently.
    """
    if settings.is_production or _is_loopback_host(settings.host):
        return None
    return (
        f"development mode is listening on {settings.host}, beyond this machine: anyone who "
        "reaches it can read /docs and /openapi.json, and signed-in admins the email outbox "
        "at /dev/outbox. Set HERALD_ENV=production for a real deployment, or listen on "
        "127.0.0.1."
    )


def warn_if_exposed(settings: Settings) -> None:
    warning = exposure_warning(settings)
    if warning is not None:
        log.warning(warning, host=settings.host, port=settings.port)


def start_tracing(role: str) -> None:
    """OTLP traces of this process when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (flushed at
    exit by the SDK); otherwise nothing at all (``core/tracing.py``)."""
    if tracing.configure(role) is not None:
        log.info("tracing on: spans go to the OTLP endpoint", role=role)


def _is_loopback_host(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


@asynccontextmanager
async def open_database(settings: Settings, purpose: str = "herald-cli") -> AsyncIterator[Database]:
    """A migrated database with a small pool, for one-shot commands."""
    from herald.core import migrate

    async with database_urls(settings) as urls:
        await migrate.upgrade_async(urls.direct)
        small = settings.db.model_copy(update={"pool_min_size": 1, "pool_max_size": 2})
        db = await Database.open(urls.pool, small, purpose)
        try:
            yield db
        finally:
            await db.close()


@dataclass(frozen=True)
class DatabaseUrls:
    """``pool``: the connection pool's URL (a pooler's, when there is one). ``direct``:
    Postgres itself, for LISTEN, migrations and session advisory locks (the same URL
    unless ``HERALD_DIRECT_DATABASE_URL`` is set)."""

    pool: str
    direct: str


@asynccontextmanager
async def database_urls(settings: Settings) -> AsyncIterator[DatabaseUrls]:
    """The configured database URLs, or an embedded Postgres kept up for the block."""
    if settings.database_url is not None:
        direct = settings.direct_database_url or settings.database_url
        yield DatabaseUrls(settings.database_url.get_secret_value(), direct.get_secret_value())
        return
    embedded = EmbeddedPostgres(settings.data_dir, run_as_user=settings.embedded.run_as_user)
    dsn = await asyncio.to_thread(embedded.start)
    try:
        await ensure_database(embedded.dsn("postgres"), embedded.database, settings.db)
        log.debug("embedded postgres ready", data_dir=str(embedded.pgdata))
        yield DatabaseUrls(dsn, dsn)
    finally:
        stopped = await asyncio.to_thread(embedded.stop)
        log.debug("embedded postgres released", stopped=stopped)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: Herald owns shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class Stopper:
    """Sets ``event`` on SIGTERM/SIGINT; a second signal forces an immediate exit."""

    event: asyncio.Event = field(default_factory=asyncio.Event)
    callbacks: list[Callable[[], None]] = field(default_factory=list)

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.trigger, sig)

    def trigger(self, sig: int | None = None) -> None:
        if self.event.is_set() and sig == signal.SIGINT:
            raise SystemExit(130)
        if not self.event.is_set():
            log.info("shutting down", signal=signal.Signals(sig).name if sig else None)
        self.event.set()
        for callback in self.callbacks:
            callback()


def _bound_port(server: uvicorn.Server) -> int | None:
    for srv in getattr(server, "servers", []):
        for sock in srv.sockets:
            port: int = sock.getsockname()[1]
            return port
    return None


async def run(
    settings: Settings,
    *,
    web: bool,
    worker: bool,
    concurrency: int | None = None,
    on_ready: Callable[[str], None] | None = None,
    on_database: Callable[[Database], Awaitable[None]] | None = None,
) -> None:
    """Run web and/or worker in this process until a signal, then drain and return.

    ``on_database`` runs once the schema is current, before serving (``up`` uses it
    to create the first admin).
    """
    stopper = Stopper()
    stopper.install()
    start_tracing("herald-" + "+".join(n for n, on in (("web", web), ("worker", worker)) if on))
    if web:
        warn_if_exposed(settings)
    from herald.core import migrate

    async with database_urls(settings) as urls:
        await migrate.upgrade_async(urls.direct)
        pool_name = "herald-" + "+".join(n for n, on in (("web", web), ("worker", worker)) if on)
        db = await Database.open(urls.pool, settings.db, pool_name)
        try:
            if on_database is not None:
                await on_database(db)
            await _run_parts(
                settings,
                db,
                urls.direct,
                stopper,
                web=web,
                worker=worker,
                concurrency=concurrency,
                on_ready=on_ready,
            )
        finally:
            await db.close()


async def _run_parts(
    settings: Settings,
    db: Database,
    direct_dsn: str,
    stopper: Stopper,
    *,
    web: bool,
    worker: bool,
    concurrency: int | None,
    on_ready: Callable[[str], None] | None,
) -> None:
    tasks: list[asyncio.Task[None]] = []
    provider: EmailProvider | None = None
    from herald.composition import metrics

    process_metrics = metrics.start_for_process(settings, direct_dsn, stopper.event)
    if worker:
        from herald.composition.worker import start_worker

        provider = start_worker(settings, db, direct_dsn, stopper.event, concurrency, tasks)
    if web or worker:
        from herald.composition import housekeeping

        tasks.append(
            asyncio.create_task(housekeeping.run(db, settings, stopper.event), name="housekeeping")
        )
    server = _start_web(settings, db, direct_dsn, stopper, tasks) if web else None
    if on_ready is not None:
        tasks.append(asyncio.create_task(_announce(server, settings, on_ready), name="announce"))
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if task.exception() is not None:
                stopper.trigger()
        await asyncio.gather(*tasks, return_exceptions=True)
        for task in tasks:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        for task in tasks:
            task.cancel()
        if provider is not None:
            await provider.aclose()
        if process_metrics is not None:
            await process_metrics.close()


def _start_web(
    settings: Settings,
    db: Database,
    direct_dsn: str,
    stopper: Stopper,
    tasks: list[asyncio.Task[None]],
) -> _Server:
    """The web server, as a task; on the first signal it drains (readiness 503 for
    ``HERALD_SHUTDOWN_DELAY_SECONDS``), lets the live sockets close with 1001, then stops
    serving; a second signal stops it at once."""
    from herald.composition.app import create_app

    app = create_app(settings, db=db, listen_dsn=direct_dsn)
    server = _Server(uvicorn.Config(app, **uvicorn_options(settings)))

    def stop_serving() -> None:
        server.should_exit = True

    async def stop_later(delay: float) -> None:
        await asyncio.sleep(delay)
        # uvicorn's shutdown closes the sockets still open with 1012: let the live
        # sockets' 1001 go out first (they started closing when draining was set).
        state = getattr(app.state, "herald", None)
        hub = state.find(LiveHub) if state is not None else None
        if hub is not None:
            await hub.wait_closed(CLOSE_ON_DRAIN_SECONDS)
        stop_serving()

    def begin_web_shutdown() -> None:
        state = getattr(app.state, "herald", None)
        first = state is None or not state.draining
        if state is not None:
            state.draining = True
        if not first:  # a second signal: at once
            stop_serving()
            return
        delay = settings.shutdown_delay_seconds
        if delay > 0:
            # Readiness answers 503 while requests are still served; a second signal
            # ends the wait (the callback runs again with draining set).
            log.info("draining: serving on with readiness 503", seconds=delay)
        tasks.append(asyncio.create_task(stop_later(delay), name="stop-serving"))

    stopper.callbacks.append(begin_web_shutdown)
    tasks.append(asyncio.create_task(_serve(server, stopper), name="web"))
    return server


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How every Herald web server runs uvicorn (one process here, N in multiprocess)."""
    return {
        "host": settings.host,
        "port": settings.port,
        "log_config": None,
        "access_log": False,
        "server_header": False,
        "proxy_headers": True,
        "forwarded_allow_ips": settings.forwarded_allow_ips,
        "timeout_graceful_shutdown": int(settings.delivery.drain_seconds),
        # GET /admin/live (admin/live.py): protocol pings find dead clients; a client
        # sends nothing that matters, so its messages stay small; no per-socket zlib.
        "ws": "websockets-sansio",
        "ws_ping_interval": 20.0,
        "ws_ping_timeout": 20.0,
        "ws_max_size": 64 * 1024,
        "ws_per_message_deflate": False,
    }


async def _serve(server: _Server, stopper: Stopper) -> None:
    try:
        await server.serve()
    except SystemExit as exc:  # uvicorn exits when it cannot bind
        raise HeraldError(
            f"the web server could not start on {server.config.host}:{server.config.port} "
            "(is the port in use?)"
        ) from exc
    if not stopper.event.is_set():
        stopper.trigger()


async def _announce(
    server: _Server | None, settings: Settings, on_ready: Callable[[str], None]
) -> None:
    if server is not None:
        while not server.started:
            if server.should_exit:
                return
            await asyncio.sleep(0.02)
        port = _bound_port(server) or settings.port
        on_ready(f"http://{settings.host}:{port}")
    else:
        on_ready("")
