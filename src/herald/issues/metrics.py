"""Issue gauges, computed by the one elected process on a timer (``refresh_gauges``)."""

from __future__ import annotations

from prometheus_client import Gauge

from herald.core.db import Connection
from herald.delivery.domain import DeliveryStatus
from herald.issues import repository
from herald.issues.domain import IssueStatus

ISSUES = Gauge(
    "herald_issues",
    "Newsletter issues by status.",
    ["status"],
    multiprocess_mode="livemostrecent",
)
RECIPIENTS = Gauge(
    "herald_issue_recipients",
    "Recipients queued for the issues in each status (sum over the issues).",
    ["status"],
    multiprocess_mode="livemostrecent",
)
PUBLISHING_DELIVERIES = Gauge(
    "herald_publishing_issue_deliveries",
    "Deliveries of the issues being published, by delivery status (queued, sending, "
    "sent, failed, suppressed): the send in progress.",
    ["status"],
    multiprocess_mode="livemostrecent",
)


async def refresh_gauges(conn: Connection) -> None:
    found = {
        status: (issues, recipients)
        for status, issues, recipients in await repository.issue_gauges(conn)
    }
    for status in IssueStatus:
        issues, recipients = found.get(status.value, (0, 0))
        ISSUES.labels(status.value).set(issues)
        RECIPIENTS.labels(status.value).set(recipients)
    counts = await repository.publishing_delivery_counts(conn)
    for delivery_status in DeliveryStatus:
        PUBLISHING_DELIVERIES.labels(delivery_status.value).set(
            counts.get(delivery_status.value, 0)
        )


def reset_gauges() -> None:
    """A process that no longer computes the gauges stops exporting its last values."""
    ISSUES.clear()
    RECIPIENTS.clear()
    PUBLISHING_DELIVERIES.clear()
