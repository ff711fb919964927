"""An issue's feedback as rates and warnings (deliverability/rates.py)."""

from __future__ import annotations

import pytest

from herald.deliverability.domain import EventKind
from herald.deliverability.rates import Feedback, Level, percent


def test_rates_are_per_recipient_sent_to() -> None:
    feedback = Feedback({EventKind.HARD_BOUNCE: 30, EventKind.COMPLAINT: 2}, sent=10_000)
    assert feedback.bounce_rate == pytest.approx(0.003)
    assert feedback.complaint_rate == pytest.approx(0.0002)
    assert feedback.percent_of("hard_bounce") == "0.30 %"
    assert feedback.count("soft_bounce") == 0


def test_nothing_sent_means_no_rate_and_no_warning() -> None:
    feedback = Feedback({EventKind.COMPLAINT: 5}, sent=None)
    assert feedback.complaint_rate is None
    assert feedback.percent_of("complaint") == "—"
    assert feedback.complaint_level is Level.OK
    assert Feedback({EventKind.COMPLAINT: 5}, sent=0).warnings() == []


@pytest.mark.parametrize(
    ("complaints", "level"),
    [(0, Level.OK), (9, Level.OK), (10, Level.WARN), (29, Level.WARN), (30, Level.ALERT)],
)
def test_complaint_levels_follow_gmail_thresholds(complaints: int, level: Level) -> None:
    feedback = Feedback({EventKind.COMPLAINT: complaints}, sent=10_000)
    assert feedback.complaint_level is level
    texts = [n.text for n in feedback.warnings()]
    if level is Level.OK:
        assert texts == []
    else:
        assert len(texts) == 1
        assert "0.3 %" in texts[0]


@pytest.mark.parametrize(
    ("bounces", "level"),
    [(199, Level.OK), (200, Level.WARN), (499, Level.WARN), (500, Level.ALERT)],
)
def test_bounce_levels(bounces: int, level: Level) -> None:
    feedback = Feedback({EventKind.HARD_BOUNCE: bounces}, sent=10_000)
    assert feedback.bounce_level is level
    assert [n.level for n in feedback.warnings()] == ([] if level is Level.OK else [level])


def test_blocked_always_alerts_and_complaints_come_first() -> None:
    feedback = Feedback(
        {EventKind.BLOCKED: 1, EventKind.COMPLAINT: 40, EventKind.HARD_BOUNCE: 600}, sent=10_000
    )
    notices = feedback.warnings()
    assert [n.level for n in notices] == [Level.ALERT, Level.ALERT, Level.ALERT]
    assert "Spam complaints" in notices[0].text
    assert notices[2].text.startswith("1 message was blocked")
    assert "SPF, DKIM and DMARC" in notices[2].text


@pytest.mark.parametrize(
    ("rate", "text"),
    [(0.0, "0 %"), (0.0031, "0.31 %"), (0.024, "2.4 %"), (0.123, "12 %"), (1.0, "100 %")],
)
def test_percent(rate: float, text: str) -> None:
    assert percent(rate) == text
