"""Queue metrics. Counters are exported from each batch's ``Counters``; the gauges
(deliveries by status, age of the oldest ready delivery) are computed by one elected
process on a timer (``refresh_gauges``), never per scrape."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram

from herald.core.db import Connection
from herald.delivery import repository
from herald.delivery.domain import DeliveryStatus

if TYPE_CHECKING:
    from herald.delivery.batch import Counters

OUTCOMES = Counter(
    "herald_delivery_outcomes_total",
    "Recorded results of delivery attempts, by provider and outcome class.",
    ["provider", "outcome"],
)
CLAIMED = Counter("herald_delivery_claimed_total", "Deliveries claimed by workers.")
RESCUED = Counter(
    "herald_delivery_lease_rescues_total",
    "Deliveries claimed again after their previous worker's lease ran out (a crash, or "
    "a worker cut off from the database).",
)
RENEWALS = Counter(
    "herald_delivery_lease_renewals_total", "Heartbeat renewals of the lease of a batch in hand."
)
LOST = Counter(
    "herald_delivery_leases_lost_total",
    "Deliveries whose lease ran out while their worker was alive (not sent by it).",
)
FENCED_MISSES = Counter(
    "herald_delivery_fenced_misses_total",
    "Rows a fenced result write expected to update but no longer held.",
)
RELEASED = Counter("herald_delivery_released_total", "Deliveries released unsent at shutdown.")
RATE_LIMIT_WAITS = Counter(
    "herald_delivery_rate_limit_waits_total",
    "Claims that waited for the global rate limit (HERALD_DELIVERY__RATE_PER_SECOND).",
)
RATE_LIMIT_WAIT_SECONDS = Counter(
    "herald_delivery_rate_limit_wait_seconds_total", "Time spent waiting for the rate limit."
)
CLAIM_TO_ACCEPTED = Histogram(
    "herald_delivery_claim_to_accepted_seconds",
    "Time from a batch's claim to the provider's answer, per provider call.",
    ["provider"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)
DELIVERIES = Gauge(
    "herald_deliveries",
    "Deliveries still to send, by status (queued, sending); computed by one process "
    "every HERALD_METRICS__GAUGE_INTERVAL_SECONDS.",
    ["status"],
    multiprocess_mode="livemostrecent",
)
OLDEST_READY_AGE = Gauge(
    "herald_queue_oldest_ready_age_seconds",
    "How long the oldest claimable delivery has been waiting (0 when none is): the queue's "
    "alerting metric.",
    multiprocess_mode="livemostrecent",
)


async def refresh_gauges(conn: Connection) -> None:
    counts = await repository.pending_counts(conn)
    for status in (DeliveryStatus.QUEUED, DeliveryStatus.SENDING):
        DELIVERIES.labels(status.value).set(counts.get(status.value, 0))
    OLDEST_READY_AGE.set(await repository.oldest_ready_age(conn))


def reset_gauges() -> None:
    """What a process that does not compute the gauges exports: no queue counts, age 0
    (so ``max`` over the processes is the computing process's value, never a stale one)."""
    DELIVERIES.clear()
    OLDEST_READY_AGE.set(0)


def export(report: Counters, provider: str) -> None:
    """Add one batch's figures to the counters."""
    for outcome, count in (
        ("sent", report.sent),
        ("retry", report.retried),
        ("failed", report.failed),
        ("suppressed", report.suppressed),
    ):
        if count:
            OUTCOMES.labels(provider, outcome).inc(count)
    for counter, value in (
        (CLAIMED, report.claimed),
        (RESCUED, report.rescued),
        (RENEWALS, report.renewals),
        (LOST, report.lost),
        (FENCED_MISSES, report.fenced_misses),
        (RELEASED, report.released),
    ):
        if value:
            counter.inc(value)
