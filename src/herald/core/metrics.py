"""Prometheus metrics: the process-wide registry, the listener, and the pool gauges.

Metrics are ``prometheus_client`` objects defined next to the code that updates them
(``web/metrics.py`` for HTTP, ``delivery/metrics.py`` for the queue, ``issues/metrics.py``
for issues; the database pool's here). Every label has a bounded set of values: route
templates, never raw paths; status classes; provider names; outcome classes.

One process (``herald up``, ``serve``, ``worker``) serves its own registry on
``HERALD_METRICS__HOST:HERALD_METRICS__PORT``. ``serve --workers N`` runs N uvicorn
processes: there the supervisor sets ``PROMETHEUS_MULTIPROC_DIR`` before it starts them,
every process writes its values to files in that directory, and the supervisor serves
their sum (``prometheus_client``'s multiprocess mode). Gauges therefore name how they
combine across processes (``multiprocess_mode``).
"""

from __future__ import annotations

import os
import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry, Gauge, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

DB_POOL_CONNECTIONS = Gauge(
    "herald_db_pool_connections",
    "Connections of this process's pool, by state (open, in_use).",
    ["pool", "state"],
    multiprocess_mode="livesum",
)
DB_POOL_MAX = Gauge(
    "herald_db_pool_max_connections",
    "The most connections the pool may open.",
    ["pool"],
    multiprocess_mode="livesum",
)
DB_POOL_WAITING = Gauge(
    "herald_db_pool_waiting",
    "Tasks waiting for a connection of the pool (saturation).",
    ["pool"],
    multiprocess_mode="livesum",
)


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROCESS_ENV) or None


def serving_registry() -> CollectorRegistry:
    """What ``/metrics`` serves: this process's registry, or the multiprocess sum."""
    directory = multiprocess_dir()
    if directory is None:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return registry


class MetricsServer:
    """The ``/metrics`` listener: a small thread of its own, off the event loop."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def start_metrics_server(host: str, port: int) -> MetricsServer:
    """Listen on ``host:port`` (0: any free port) and serve ``/metrics``."""
    server, thread = start_http_server(port, addr=host, registry=serving_registry())
    return MetricsServer(server, thread)
