"""``herald serve --workers N``: N web processes under uvicorn's supervisor.

The parent resolves the database once (starting the embedded Postgres if no
URL is configured) and migrates; each child builds its app from the
environment, with the resolved URL handed down in ``HERALD_DATABASE_URL`` (and
``HERALD_DIRECT_DATABASE_URL``, when set, for their LISTEN connections and the gauge lock).
With ``HERALD_METRICS__PORT`` set, the parent serves ``/metrics`` for all of them
(prometheus_client's multiprocess mode, see ``core/metrics.py``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
import threading
from types import FrameType

import uvicorn
from fastapi import FastAPI

from herald.composition.metrics import start_listener
from herald.core import migrate
from herald.core.config import Settings, load_settings
from herald.core.db import ensure_database
from herald.core.embedded_pg import EmbeddedPostgres
from herald.core.live import CLOSE_ON_DRAIN_SECONDS, LiveHub
from herald.core.metrics import MULTIPROCESS_ENV, MetricsServer
from herald.web.state import AppState


def app_from_env() -> FastAPI:
    """uvicorn factory for child processes."""
    from herald.composition.app import create_app
    from herald.composition.runtime import start_tracing
    from herald.core.telemetry import configure_logging

    settings = load_settings()
    configure_logging(settings)
    start_tracing("herald-web")
    assert settings.database_url is not None, "the parent passes HERALD_DATABASE_URL"
    direct = settings.direct_database_url or settings.database_url
    return create_app(
        settings,
        dsn=settings.database_url.get_secret_value(),
        listen_dsn=direct.get_secret_value(),
        housekeeping=True,
        metrics_gauges=True,
        on_started=_drain_on_signals,
    )


def _drain_on_signals(state: AppState) -> None:
    """In a child, uvicorn's own handler stops the server; mark the app draining first so
    /health/ready turns 503 and progress streams end instead of holding the shutdown.
    With ``HERALD_SHUTDOWN_DELAY_SECONDS`` the child serves on that long before uvicorn's
    handler runs; a second signal stops it at once.

    uvicorn's handler runs only once the live sockets have closed with 1001 (at most
    ``CLOSE_ON_DRAIN_SECONDS``): its shutdown closes any socket still open with 1012 at
    its next tick (0.1 s), and 2,000 closes on a busy machine take longer than that."""
    if threading.current_thread() is not threading.main_thread():
        return
    loop = asyncio.get_running_loop()
    delay = state.settings.shutdown_delay_seconds
    stopped = {"uvicorn": False}  # whether uvicorn's handler ran (once is enough)
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)

        def handler(signum: int, frame: FrameType | None, previous: object = previous) -> None:
            first = not state.draining
            state.draining = True  # the live sockets start closing with 1001
            if not callable(previous):
                return
            if not first:
                stopped["uvicorn"] = True
                previous(signum, frame)
                return

            async def stop() -> None:
                if delay > 0:
                    await asyncio.sleep(delay)
                hub = state.find(LiveHub)
                if hub is not None:
                    await hub.wait_closed(CLOSE_ON_DRAIN_SECONDS)
                if not stopped["uvicorn"]:  # a second signal may have stopped it already
                    stopped["uvicorn"] = True
                    previous(signum, frame)

            # A signal handler may run between any two bytecodes of the loop's own code:
            # it only wakes the loop, which starts the wait.
            loop.call_soon_threadsafe(lambda: _STOPPING.add(loop.create_task(stop())))

        signal.signal(sig, handler)


_STOPPING: set[asyncio.Task[None]] = set()  # a task's only reference (asyncio keeps weak ones)


def serve(settings: Settings, workers: int) -> None:
    from herald.composition.runtime import uvicorn_options, warn_if_exposed

    warn_if_exposed(settings)
    embedded: EmbeddedPostgres | None = None
    if settings.database_url is not None:
        dsn = settings.database_url.get_secret_value()
        direct = settings.direct_database_url or settings.database_url
        direct_dsn = direct.get_secret_value()
    else:
        embedded = EmbeddedPostgres(settings.data_dir, run_as_user=settings.embedded.run_as_user)
        dsn = direct_dsn = embedded.start()
        asyncio.run(ensure_database(embedded.dsn("postgres"), embedded.database, settings.db))
    listener: MetricsServer | None = None
    metrics_dir: str | None = None
    try:
        asyncio.run(migrate.upgrade_async(direct_dsn))
        if settings.metrics.port is not None:
            # Every child writes its values into this directory (it must be set before a
            # child imports prometheus_client); this process serves their sum.
            metrics_dir = tempfile.mkdtemp(prefix="herald-metrics-")
            os.environ[MULTIPROCESS_ENV] = metrics_dir
            listener = start_listener(settings)
        os.environ["HERALD_DATABASE_URL"] = dsn
        os.environ["HERALD_PORT"] = str(settings.port)
        os.environ["HERALD_HOST"] = settings.host
        uvicorn.run(
            "herald.composition.multiprocess:app_from_env",
            factory=True,
            workers=workers,
            **uvicorn_options(settings),
        )
    finally:
        if listener is not None:
            listener.close()
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
        if embedded is not None:
            embedded.stop()
