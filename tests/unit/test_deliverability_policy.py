"""The deliverability policy: what each kind of event does to its address."""

from __future__ import annotations

from datetime import timedelta

import pytest

from herald.core.config import DeliverabilitySettings
from herald.core.errors import ValidationError
from herald.deliverability.domain import EventKind
from herald.deliverability.policy import Policy, configured
from herald.subscriptions.domain import SuppressionReason


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        (EventKind.HARD_BOUNCE, SuppressionReason.HARD_BOUNCE),
        (EventKind.COMPLAINT, SuppressionReason.COMPLAINT),
        (EventKind.PROVIDER_UNSUBSCRIBE, SuppressionReason.PROVIDER),
        (EventKind.PROVIDER_SUPPRESSION, SuppressionReason.PROVIDER),
        (EventKind.BLOCKED, None),
        (EventKind.DELIVERED, None),
        (EventKind.DEFERRED, None),
    ],
)
def test_what_each_kind_does_at_once(kind: EventKind, reason: SuppressionReason | None) -> None:
    policy = Policy()
    assert policy.decide(kind) is reason
    assert policy.at_once(kind) is reason
    assert policy.may_suppress(kind) is (reason is not None)


def test_soft_bounces_suppress_from_the_limit_on() -> None:
    policy = Policy(soft_bounce_limit=3)
    assert [policy.decide(EventKind.SOFT_BOUNCE, n) for n in (1, 2, 3, 4)] == [
        None,
        None,
        SuppressionReason.HARD_BOUNCE,
        SuppressionReason.HARD_BOUNCE,
    ]
    assert policy.at_once(EventKind.SOFT_BOUNCE) is None
    assert policy.may_suppress(EventKind.SOFT_BOUNCE)


def test_only_a_block_raises_the_alert() -> None:
    assert [k for k in EventKind if Policy.alerts(k)] == [EventKind.BLOCKED]


def test_the_configured_policy() -> None:
    policy = configured(DeliverabilitySettings(soft_bounce_limit=5, soft_bounce_window_days=7))
    assert policy == Policy(5, timedelta(days=7))
    assert configured(DeliverabilitySettings()) == Policy(3, timedelta(days=30))


def test_a_policy_that_makes_no_sense_is_refused() -> None:
    with pytest.raises(ValidationError):
        Policy(soft_bounce_limit=0)
    with pytest.raises(ValidationError):
        Policy(soft_bounce_window=timedelta(0))


def test_the_suppression_source_names_provider_and_kind() -> None:
    assert Policy.source("postmark", EventKind.HARD_BOUNCE) == "postmark: hard bounce"
