"""The progress figure shown on an issue's page and streamed to it."""

from __future__ import annotations

import uuid

import pytest

from herald.issues.domain import IssueStatus
from herald.issues.service import Progress


@pytest.mark.parametrize("status", [IssueStatus.DRAFT, IssueStatus.SCHEDULED])
def test_an_unpublished_issue_is_at_zero_percent(status: IssueStatus) -> None:
    assert Progress(uuid.uuid4(), status, 0, {}).percent == 0.0
    assert Progress(uuid.uuid4(), status, 10, {}).as_json()["percent"] == 0.0


def test_a_publishing_issue_counts_every_finished_delivery() -> None:
    progress = Progress(
        uuid.uuid4(),
        IssueStatus.PUBLISHING,
        8,
        {"sent": 3, "failed": 1, "suppressed": 2, "queued": 1, "sending": 1},
    )
    assert progress.done == 6
    assert progress.percent == 75.0


def test_a_sent_issue_with_nobody_to_send_to_is_complete() -> None:
    assert Progress(uuid.uuid4(), IssueStatus.SENT, 0, {}).percent == 100.0


def test_the_rate_is_measured_over_the_streams_last_minute() -> None:
    from herald.issues.progress import RateWindow

    window = RateWindow(window=60, least=5)
    issue_id = uuid.uuid4()

    def at(done: int) -> Progress:
        return Progress(
            issue_id, IssueStatus.PUBLISHING, 1000, {"sent": done, "queued": 1000 - done}
        )

    assert window.rate(at(0), 0.0).rate_per_min is None  # too soon to tell
    halfway = window.rate(at(100), 10.0)
    assert halfway.rate_per_min == 600.0
    assert halfway.eta_seconds == 90  # 900 left at 600 a minute
    later = window.rate(at(400), 70.0)  # the first sample has left the window
    assert later.rate_per_min == 300 * 60 / 60
    assert Progress(issue_id, IssueStatus.SENT, 10, {"sent": 10}).eta_seconds is None
