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
