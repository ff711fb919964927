"""SES notifications (both formats: an identity's notifications and event publishing) as
Herald's events: the kind of each, one per recipient, stable ids, the delivery found."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from herald.core.errors import ValidationError
from herald.deliverability.domain import EventKind, Provider
from herald.deliverability.ses import parse_notification
from tests.support.sns import ses_bounce, ses_complaint, ses_delivery, ses_mail

READER = "jane@example.test"


def events(notification: dict[str, Any] | str, sns_id: str = "sns-1") -> list[Any]:
    text = notification if isinstance(notification, str) else json.dumps(notification)
    return parse_notification(text, sns_message_id=sns_id)


@pytest.mark.parametrize(
    ("bounce_type", "sub_type", "kind"),
    [
        ("Permanent", "General", EventKind.HARD_BOUNCE),
        ("Permanent", "NoEmail", EventKind.HARD_BOUNCE),
        ("Permanent", "Suppressed", EventKind.PROVIDER_SUPPRESSION),
        ("Permanent", "OnAccountSuppressionList", EventKind.PROVIDER_SUPPRESSION),
        ("Transient", "General", EventKind.SOFT_BOUNCE),
        ("Transient", "MailboxFull", EventKind.SOFT_BOUNCE),
        ("Transient", "MessageTooLarge", EventKind.SOFT_BOUNCE),
        ("Transient", "ContentRejected", EventKind.BLOCKED),
        ("Transient", "AttachmentRejected", EventKind.BLOCKED),
        ("Undetermined", "Undetermined", EventKind.SOFT_BOUNCE),
        ("SomethingNew", "New", EventKind.SOFT_BOUNCE),
    ],
)
def test_bounce_kinds(bounce_type: str, sub_type: str, kind: EventKind) -> None:
    for publishing in (False, True):
        notification = ses_bounce(
            READER, bounce_type=bounce_type, sub_type=sub_type, event_publishing=publishing
        )
        (event,) = events(notification)
        assert event.kind is kind
        assert event.provider is Provider.SES
        assert event.recipient == READER
        assert event.occurred_at == datetime(2026, 12, 5, 10, 0, 5, 123000, tzinfo=UTC)
        assert event.detail.startswith(f"{bounce_type}/{sub_type}: smtp; 550 5.1.1")


def test_a_bounce_of_several_recipients_is_one_event_each_with_its_own_id() -> None:
    notification = ses_bounce(READER, feedback_id="fb-1")
    first = notification["bounce"]["bouncedRecipients"][0]
    notification["bounce"]["bouncedRecipients"] = [
        first,
        {**first, "emailAddress": "Bob <bob@example.test>"},
        "garbage",
        {"emailAddress": ""},
    ]
    found = events(notification)
    assert [e.recipient for e in found] == [READER, "bob@example.test"]
    assert [e.event_id for e in found] == [f"fb-1:{READER}", "fb-1:bob@example.test"]


def test_the_id_is_the_same_when_sns_repeats_the_notification() -> None:
    notification = ses_bounce(READER)
    assert events(notification, "sns-1")[0].event_id == events(notification, "sns-2")[0].event_id


def test_the_delivery_comes_from_the_tag_else_the_original_message_id() -> None:
    (tagged,) = events(ses_bounce(READER, delivery_id=4711, event_publishing=True))
    assert tagged.delivery_id == 4711
    assert tagged.message_id == "<herald-1@news.example.test>"
    (untagged,) = events(ses_bounce(READER, message_id="<abc@news.example.test>"))
    assert untagged.delivery_id is None
    assert untagged.message_id == "<abc@news.example.test>"
    bare = ses_bounce(READER)
    del bare["mail"]["commonHeaders"], bare["mail"]["headers"]
    (ses_id,) = events(bare)
    assert ses_id.message_id == bare["mail"]["messageId"]


@pytest.mark.parametrize("tag", [["0"], ["-1"], ["12x"], ["9" * 19], [], [7], "4711", None])
def test_a_malformed_delivery_tag_is_ignored(tag: Any) -> None:
    notification = ses_bounce(READER, event_publishing=True)
    notification["mail"]["tags"]["herald_delivery"] = tag
    (event,) = events(notification)
    assert event.delivery_id is None


def test_complaints() -> None:
    (event,) = events(ses_complaint(READER))
    assert event.kind is EventKind.COMPLAINT
    assert event.detail == "complaint: abuse"
    assert event.event_id.endswith(f":{READER}")
    (unspecified,) = events(ses_complaint(READER, feedback_type=None))
    assert unspecified.kind is EventKind.COMPLAINT
    assert events(ses_complaint(READER, feedback_type="not-spam")) == []
    suppressed = ses_complaint(READER)
    suppressed["complaint"]["complaintSubType"] = "OnAccountSuppressionList"
    assert events(suppressed)[0].kind is EventKind.PROVIDER_SUPPRESSION


def test_deliveries_delays_and_rejects() -> None:
    (delivered,) = events(ses_delivery(READER))
    assert delivered.kind is EventKind.DELIVERED
    assert delivered.detail == "250 ok: Message 64111812 accepted"
    assert delivered.event_id.startswith("delivery:0100018c3f4a5b6c")

    delay = {
        "eventType": "DeliveryDelay",
        "mail": ses_mail(READER, event_publishing=True),
        "deliveryDelay": {
            "timestamp": "2026-12-05T10:30:00.000Z",
            "delayType": "TransientCommunicationFailure",
            "expirationTime": "2026-12-05T22:00:00.000Z",
            "delayedRecipients": [
                {"emailAddress": READER, "status": "4.4.1", "diagnosticCode": "smtp; 421 4.4.1"}
            ],
        },
    }
    (deferred,) = events(delay)
    assert deferred.kind is EventKind.DEFERRED
    assert deferred.detail == "TransientCommunicationFailure: smtp; 421 4.4.1"
    later = json.loads(json.dumps(delay))
    later["deliveryDelay"]["timestamp"] = "2026-12-05T11:30:00.000Z"
    assert events(later)[0].event_id != deferred.event_id  # a second delay is a second event

    reject = {"eventType": "Reject", "mail": ses_mail(READER), "reject": {"reason": "Bad content"}}
    (blocked,) = events(reject)
    assert blocked.kind is EventKind.BLOCKED
    assert blocked.detail == "rejected by SES: Bad content"
    assert blocked.occurred_at == datetime(2026, 12, 5, 10, 0, tzinfo=UTC)


def test_ses_list_management_unsubscribe() -> None:
    subscription = {
        "eventType": "Subscription",
        "mail": ses_mail(READER, event_publishing=True),
        "subscription": {
            "contactList": "herald",
            "timestamp": "2026-12-05T12:00:00.000Z",
            "source": "UnsubscribeHeader",
            "newTopicPreferences": {"unsubscribeAll": True},
            "oldTopicPreferences": {"unsubscribeAll": False},
        },
    }
    (event,) = events(subscription)
    assert event.kind is EventKind.PROVIDER_UNSUBSCRIBE
    subscription["subscription"]["newTopicPreferences"] = {"unsubscribeAll": False}
    assert events(subscription) == []


@pytest.mark.parametrize(
    "notification",
    [
        {"notificationType": "AmazonSnsSubscriptionSucceeded", "message": "You have..."},
        {"eventType": "Send", "mail": {}, "send": {}},
        {"eventType": "Open", "mail": {}, "open": {}},
        {"eventType": "Click", "mail": {}, "click": {}},
        {"eventType": "Rendering Failure", "mail": {}, "failure": {}},
        {"something": "else"},
        {"notificationType": ["Bounce"]},
    ],
)
def test_other_notifications_are_no_events(notification: dict[str, Any]) -> None:
    assert events(notification) == []


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("not json", "not JSON"),
        ("[]", "not a JSON object"),
        ('{"notificationType": "Bounce"}', "lacks its 'mail' object"),
        ('{"notificationType": "Bounce", "mail": {}}', "lacks its 'bounce' object"),
    ],
)
def test_malformed_notifications_are_refused(text: str, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        events(text)


def test_times_must_be_iso_with_a_zone() -> None:
    notification = ses_bounce(READER)
    notification["bounce"]["timestamp"] = "yesterday"
    with pytest.raises(ValidationError, match="not ISO 8601"):
        events(notification)
    notification["bounce"]["timestamp"] = "2026-12-05T10:00:00"
    with pytest.raises(ValidationError, match="time zone"):
        events(notification)
    del notification["bounce"]["timestamp"]
    assert events(notification)[0].occurred_at == datetime(2026, 12, 5, 10, tzinfo=UTC)


def test_long_ids_are_hashed_and_long_details_cut() -> None:
    long_address = "a" * 64 + "@" + "b" * 180 + ".test"
    notification = ses_bounce(long_address, feedback_id="f" * 100)
    notification["bounce"]["bouncedRecipients"][0]["diagnosticCode"] = "x" * 5000
    (event,) = events(notification)
    assert event.event_id.startswith("sha256:")
    assert len(event.event_id) <= 200
    assert len(event.detail) == 1000
    assert events(notification)[0].event_id == event.event_id


def test_recipients_are_bounded() -> None:
    notification = ses_bounce(READER)
    first = notification["bounce"]["bouncedRecipients"][0]
    notification["bounce"]["bouncedRecipients"] = [
        {**first, "emailAddress": f"r{n}@example.test"} for n in range(1000)
    ]
    assert len(events(notification)) == 100
