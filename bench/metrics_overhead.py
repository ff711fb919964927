"""Metrics library overhead: what one request's metrics cost in prometheus-client vs the
OpenTelemetry SDK (with its Prometheus exporter), measured the way Herald records them.

Per request Herald records one histogram observation with three labels (method, route
template, status class) and moves an in-flight gauge up and down. This times that unit
of work in both libraries, single-threaded, over many iterations and label sets, and
prints microseconds per request (median of 5 rounds).

    .venv/bin/python bench/metrics_overhead.py   # needs opentelemetry-sdk and
        # opentelemetry-exporter-prometheus (bench/install-tools.sh installs them)
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

ROUTES = [f"/route/{n}" for n in range(20)]
STATUS = ["2xx", "3xx", "4xx"]
ITERATIONS = 200_000
ROUNDS = 5


def prometheus_unit() -> Callable[[int], None]:
    from prometheus_client import CollectorRegistry, Gauge, Histogram

    registry = CollectorRegistry()
    duration = Histogram(
        "bench_request_duration_seconds",
        "x",
        ["method", "route", "status_class"],
        registry=registry,
        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    )
    in_flight = Gauge("bench_active_requests", "x", registry=registry)

    def unit(i: int) -> None:
        in_flight.inc()
        duration.labels("GET", ROUTES[i % 20], STATUS[i % 3]).observe(0.003)
        in_flight.dec()

    return unit


def otel_unit() -> Callable[[int], None]:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider

    provider = MeterProvider(metric_readers=[PrometheusMetricReader()])
    meter = provider.get_meter("bench")
    duration = meter.create_histogram("bench_request_duration", unit="s")
    in_flight = meter.create_up_down_counter("bench_active_requests")
    attributes = [
        {"method": "GET", "route": route, "status_class": status}
        for route in ROUTES
        for status in STATUS
    ]

    def unit(i: int) -> None:
        in_flight.add(1)
        duration.record(0.003, attributes[(i % 20) * 3 + i % 3])
        in_flight.add(-1)

    return unit


def measure(unit: Callable[[int], None]) -> float:
    """Median microseconds per unit over ROUNDS rounds of ITERATIONS."""
    results = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for i in range(ITERATIONS):
            unit(i)
        results.append((time.perf_counter() - started) / ITERATIONS * 1e6)
    return statistics.median(results)


def main() -> None:
    baseline = measure(lambda _: None)
    for name, make in (("prometheus-client", prometheus_unit), ("opentelemetry-sdk", otel_unit)):
        cost = measure(make()) - baseline
        print(f"{name:18} {cost:6.2f} µs per request (3-label histogram + in-flight gauge)")


if __name__ == "__main__":
    main()
