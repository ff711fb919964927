"""Postmark's documented webhook bodies parsed into events, and the basic auth check."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from herald.core.errors import ValidationError
from herald.deliverability import postmark
from herald.deliverability.domain import MAX_EVENT_ID_LENGTH, EventKind, Provider, ProviderEvent

FIXTURES = Path(__file__).parents[1] / "fixtures" / "postmark"


def record(name: str, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    data.update(changes)
    return data


def parse(data: object) -> list[ProviderEvent]:
    return postmark.parse(json.dumps(data).encode())


def test_the_documented_bounce() -> None:
    [event] = parse(record("bounce"))
    assert event.provider is Provider.POSTMARK
    assert event.event_id == "bounce:4323372036854775807"
    assert event.kind is EventKind.HARD_BOUNCE
    assert event.recipient == "john@example.com"
    assert event.message_id == "883953f4-6105-42a2-a16a-77a8eac79483"
    assert event.delivery_id is None  # the example's Metadata is not Herald's
    assert event.occurred_at == datetime(2019, 11, 5, 16, 33, 54, 907025, tzinfo=UTC)
    assert event.detail == "HardBounce: Test bounce details"


def test_the_documented_spam_complaint() -> None:
    [event] = parse(record("spam_complaint"))
    assert (event.event_id, event.kind) == ("bounce:42", EventKind.COMPLAINT)
    assert event.recipient == "john@example.com"


def test_the_documented_subscription_change() -> None:
    [event] = parse(record("subscription_change"))
    assert event.kind is EventKind.PROVIDER_SUPPRESSION  # a hard bounce, Postmark's list
    assert event.recipient == "bounced-address@wildbit.com"
    assert event.event_id.startswith("change:")
    assert event.detail == "HardBounce (origin: Recipient)"


def test_a_readers_unsubscribe_through_postmark() -> None:
    data = record("subscription_change", SuppressionReason="ManualSuppression", MessageID=None)
    [event] = parse(data)
    assert event.kind is EventKind.PROVIDER_UNSUBSCRIBE
    data["Origin"] = "Customer"  # an operator's suppression in Postmark
    assert parse(data)[0].kind is EventKind.PROVIDER_SUPPRESSION


def test_a_reactivation_is_ignored() -> None:
    assert parse(record("subscription_change", SuppressSending=False, SuppressionReason=None)) == []


def test_the_documented_delivery() -> None:
    [event] = parse(record("delivery"))
    assert event.kind is EventKind.DELIVERED
    assert event.recipient == "john@example.com"
    assert event.event_id.startswith("delivery:")
    assert len(event.event_id) <= MAX_EVENT_ID_LENGTH


@pytest.mark.parametrize(
    ("bounce_type", "kind"),
    [
        ("HardBounce", EventKind.HARD_BOUNCE),
        ("BadEmailAddress", EventKind.HARD_BOUNCE),
        ("SoftBounce", EventKind.SOFT_BOUNCE),
        ("DnsError", EventKind.SOFT_BOUNCE),
        ("Transient", EventKind.DEFERRED),
        ("Blocked", EventKind.BLOCKED),
        ("SpamNotification", EventKind.BLOCKED),
        ("DMARCPolicy", EventKind.BLOCKED),
        ("SpamComplaint", EventKind.COMPLAINT),
        ("Unsubscribe", EventKind.PROVIDER_UNSUBSCRIBE),
        ("ManuallyDeactivated", EventKind.PROVIDER_SUPPRESSION),
    ],
)
def test_bounce_types(bounce_type: str, kind: EventKind) -> None:
    assert parse(record("bounce", Type=bounce_type))[0].kind is kind


@pytest.mark.parametrize("bounce_type", ["AutoResponder", "Subscribe", "OpenRelayTest", "Nope"])
def test_bounce_types_that_say_nothing_are_ignored(bounce_type: str) -> None:
    assert parse(record("bounce", Type=bounce_type)) == []


def test_a_replay_has_the_same_event_id_and_another_event_another() -> None:
    for name, field, other in (
        ("bounce", "ID", 43),
        ("delivery", "DeliveredAt", "2019-11-05T16:34:00Z"),
        ("subscription_change", "ChangedAt", "2020-02-01T10:54:00Z"),
        ("delivery", "Recipient", "jane@example.com"),
    ):
        first, again = parse(record(name)), parse(record(name))
        assert first[0].event_id == again[0].event_id
        assert parse(record(name, **{field: other}))[0].event_id != first[0].event_id


def test_herald_delivery_id_from_metadata() -> None:
    assert parse(record("bounce", Metadata={"herald_delivery": "123"}))[0].delivery_id == 123
    for bad in ("-1", "0", "1e3", "²", "9" * 30, "", True, None, 1.5, ["1"]):
        found = parse(record("bounce", Metadata={"herald_delivery": bad}))[0]
        assert found.delivery_id is None, bad
    assert parse(record("bounce", Metadata="nope"))[0].delivery_id is None


def test_unknown_record_types_are_ignored() -> None:
    assert parse({"RecordType": "Open", "MessageID": "x"}) == []
    assert parse({"RecordType": "SomethingNew"}) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[]", "JSON object"),
        (b'"text"', "JSON object"),
        (b"{}", "RecordType"),
        (b'{"RecordType": 7}', "RecordType"),
        (b'{"RecordType": "Bounce", "Type": "HardBounce", "Email": "a@b.c"}', "ID"),
        (b'{"RecordType": "Bounce", "Type": "HardBounce", "ID": 1, "Email": 5}', "Email"),
        (b'{"RecordType": "SubscriptionChange", "SuppressSending": "yes"}', "SuppressSending"),
    ],
)
def test_malformed_bodies_are_refused_with_a_message(body: bytes, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        postmark.parse(body)


def test_a_time_without_zone_is_utc_and_garbage_is_now() -> None:
    [event] = parse(record("bounce", BouncedAt="2020-01-01T00:00:00"))
    assert event.occurred_at == datetime(2020, 1, 1, tzinfo=UTC)
    before = datetime.now(UTC)
    [event] = parse(record("bounce", BouncedAt="yesterday"))
    assert event.occurred_at >= before


def test_a_huge_detail_is_clipped() -> None:
    [event] = parse(record("bounce", Details="x" * 100_000))
    assert len(event.detail) == 1000


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_basic_auth() -> None:
    check = postmark.check_basic_auth
    assert check(basic("postmark", "s3cret"), "postmark", "s3cret")
    assert check("basic  " + basic("postmark", "s3cret")[6:], "postmark", "s3cret")
    assert not check(basic("postmark", "wrong"), "postmark", "s3cret")
    assert not check(basic("other", "s3cret"), "postmark", "s3cret")
    assert not check(basic("postmark", "s3cret:"), "postmark", "s3cret")
    assert not check(None, "postmark", "s3cret")
    assert not check("", "postmark", "s3cret")
    assert not check("Bearer abc", "postmark", "s3cret")
    assert not check("Basic !!!", "postmark", "s3cret")
    assert not check("Basic " + base64.b64encode(b"no-colon").decode(), "no-colon", "")


def test_no_event_keeps_an_address_in_its_detail() -> None:
    """Providers quote the recipient in their diagnostics; an erased reader's events must
    not keep it (migration 0027), whatever the adapter."""
    details = "smtp;550 5.1.1 <John.Doe+news@example.com>: Recipient address rejected"
    [event] = parse(record("bounce", Details=details))
    assert "example.com" not in event.detail
    assert event.detail == "HardBounce: smtp;550 5.1.1 <address>: Recipient address rejected"
    direct = ProviderEvent(
        provider=Provider.SES,
        event_id="x",
        kind=EventKind.COMPLAINT,
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        detail="complaint about ada@example.net, via abuse@isp.example",
    )
    assert direct.detail == "complaint about <address>, via <address>"


def test_a_nul_is_dropped_from_every_stored_text() -> None:
    """Postgres text holds no NUL; an adapter's "\u0000" must not fail the batch."""
    event = ProviderEvent(
        provider=Provider.POSTMARK,
        event_id="bounce:\x001",
        kind=EventKind.HARD_BOUNCE,
        occurred_at=datetime.now(UTC),
        recipient="a\x00@example.com",
        message_id="\x00id\x00",
        detail="550\x00 5.1.1",
    )
    assert (event.event_id, event.recipient, event.message_id, event.detail) == (
        "bounce:1",
        "a@example.com",
        "id",
        "550 5.1.1",
    )
    with pytest.raises(ValidationError, match="event id"):
        ProviderEvent(Provider.POSTMARK, "\x00", EventKind.DELIVERED, datetime.now(UTC))
