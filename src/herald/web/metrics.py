"""HTTP metrics, recorded by ``RequestContextMiddleware`` for every request.

Labels are bounded: the route *template* (``/admin/issues/{issue_id}``), one fixed
value for requests no route matched, the method from a fixed list, the status class.
"""

from __future__ import annotations

from prometheus_client import Gauge, Histogram

UNMATCHED = "<unmatched>"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

REQUEST_DURATION = Histogram(
    "http_server_request_duration_seconds",
    "Time from the request's arrival to the end of its response.",
    ["method", "route", "status_class"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
IN_FLIGHT = Gauge(
    "http_server_active_requests",
    "Requests being handled right now.",
    multiprocess_mode="livesum",
)


def method_label(method: str) -> str:
    return method if method in METHODS else "OTHER"


def status_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status <= 599 else "other"
