"""The deliverability recorder: events stored once, matched to their delivery and reader,
and the policy applied in the same transaction (hard bounces and complaints suppress at
once, soft bounces after N within the window, a block never)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from prometheus_client import REGISTRY

from herald.core.db import Connection, Database
from herald.deliverability.domain import EventKind, Provider, ProviderEvent, RecordedEvent
from herald.deliverability.policy import Policy
from herald.deliverability.service import EventRecorder
from tests.support.deliverability import sent_delivery, subscription_status, suppression
from tests.support.newsletters import add_subscribers

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def event(
    event_id: str,
    kind: EventKind,
    *,
    recipient: str = "",
    delivery_id: int | None = None,
    message_id: str = "",
    at: datetime = NOW,
) -> ProviderEvent:
    return ProviderEvent(
        provider=Provider.POSTMARK,
        event_id=event_id,
        kind=kind,
        occurred_at=at,
        recipient=recipient,
        delivery_id=delivery_id,
        message_id=message_id,
        detail="test",
    )


async def events(db: Database) -> list[dict[str, object]]:
    async with db.connection() as conn:
        found = await conn.fetch(
            "SELECT provider_event_id, kind, delivery_id, subscriber_id, suppressed,"
            " address_key = herald_address_key('reader0@example.com') AS reader0"
            " FROM email_events ORDER BY id"
        )
    return [dict(row) for row in found]


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_hard_bounce_found_by_delivery_id_suppresses_at_once(db: Database) -> None:
    [reader] = await add_subscribers(db, 1)
    delivery = await sent_delivery(db, reader, "reader0@example.com", "pm-1")
    recorder = EventRecorder(db, Policy())
    [result] = await recorder.record(
        [event("b1", EventKind.HARD_BOUNCE, recipient="Reader0@Example.com ", delivery_id=delivery)]
    )
    assert (result.stored, result.suppressed) == (True, True)
    assert (result.delivery_id, result.subscriber_id) == (delivery, reader)
    assert await suppression(db, "reader0@example.com") == ("hard_bounce", "postmark: hard bounce")
    assert (
        await subscription_status(db, reader) == "unsubscribed"
    )  # the suppression list's invariant
    [row] = await events(db)
    assert (row["delivery_id"], row["subscriber_id"]) == (delivery, reader)
    assert (row["suppressed"], row["reader0"]) == (True, True)


async def test_an_event_finds_its_delivery_by_message_id(db: Database) -> None:
    [reader] = await add_subscribers(db, 1)
    delivery = await sent_delivery(db, reader, "reader0@example.com", "pm-2")
    recorder = EventRecorder(db, Policy())
    # An unknown Herald id falls back to the message id; no recipient: the delivery's.
    [result] = await recorder.record(
        [event("c1", EventKind.COMPLAINT, delivery_id=delivery + 1000, message_id="pm-2")]
    )
    assert (result.delivery_id, result.subscriber_id, result.suppressed) == (
        delivery,
        reader,
        True,
    )
    assert await suppression(db, "reader0@example.com") == ("complaint", "postmark: complaint")


async def test_a_bounce_for_an_erased_readers_delivery_suppresses_nothing(db: Database) -> None:
    """Erasure keeps the delivery with its recipient '(erased)' (subscriptions/queries.sql);
    a bounce that names no recipient of its own must not put that placeholder on the
    suppression list (the reader's own 'erased' key already blocks the address)."""
    delivery = await sent_delivery(db, None, "(erased)", "pm-erased")
    recorder = EventRecorder(db, Policy())
    [result] = await recorder.record([event("e1", EventKind.HARD_BOUNCE, delivery_id=delivery)])
    assert (result.stored, result.suppressed, result.delivery_id) == (True, False, delivery)
    assert await suppression(db, "(erased)") is None
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM suppressions") == 0


async def test_a_replay_does_nothing(db: Database) -> None:
    [reader] = await add_subscribers(db, 1)
    recorder = EventRecorder(db, Policy())
    first = await recorder.record(
        [event("d1", EventKind.DELIVERED, recipient="reader0@example.com")]
    )
    assert (first[0].stored, first[0].subscriber_id) == (True, reader)
    before = counter("herald_deliverability_replays_total", provider="postmark")
    again = await recorder.record(
        [
            event("d1", EventKind.HARD_BOUNCE, recipient="reader0@example.com"),  # same id
            event("d2", EventKind.DELIVERED, recipient="reader0@example.com"),
            event("d2", EventKind.DELIVERED, recipient="reader0@example.com"),  # in-batch copy
        ]
    )
    assert [r.stored for r in again] == [False, True, False]
    assert [r["provider_event_id"] for r in await events(db)] == ["d1", "d2"]
    assert await suppression(db, "reader0@example.com") is None
    assert await subscription_status(db, reader) == "confirmed"
    assert counter("herald_deliverability_replays_total", provider="postmark") == before + 2


async def test_soft_bounces_suppress_after_the_limit_within_the_window(db: Database) -> None:
    [reader] = await add_subscribers(db, 1)
    recorder = EventRecorder(db, Policy(soft_bounce_limit=3, soft_bounce_window=timedelta(days=30)))
    address = "reader0@example.com"
    old = await recorder.record(
        [event("s0", EventKind.SOFT_BOUNCE, recipient=address, at=NOW - timedelta(days=40))]
    )
    first = await recorder.record(
        [event("s1", EventKind.SOFT_BOUNCE, recipient=address, at=NOW - timedelta(days=20))]
    )
    second = await recorder.record(
        [event("s2", EventKind.SOFT_BOUNCE, recipient=address, at=NOW - timedelta(days=1))]
    )
    assert not any(r[0].suppressed for r in (old, first, second))  # the 40-day-old is outside
    assert await suppression(db, address) is None
    third = await recorder.record([event("s3", EventKind.SOFT_BOUNCE, recipient=address)])
    assert third[0].suppressed
    assert await suppression(db, address) == ("hard_bounce", "postmark: soft bounce")
    assert await subscription_status(db, reader) == "unsubscribed"
    assert [r["suppressed"] for r in await events(db)] == [False, False, False, True]
    # Once suppressed, a fourth changes nothing and is not marked.
    [fourth] = await recorder.record([event("s4", EventKind.SOFT_BOUNCE, recipient=address)])
    assert (fourth.stored, fourth.suppressed) == (True, False)


async def test_soft_bounces_of_one_batch_count_together(db: Database) -> None:
    recorder = EventRecorder(db, Policy(soft_bounce_limit=2))
    address = "someone@example.org"
    results = await recorder.record(
        [
            event("t2", EventKind.SOFT_BOUNCE, recipient=address, at=NOW),
            event("t1", EventKind.SOFT_BOUNCE, recipient=address, at=NOW - timedelta(hours=1)),
        ]
    )
    assert [r.suppressed for r in results] == [True, False]  # the second in time crosses it
    assert await suppression(db, address) == ("hard_bounce", "postmark: soft bounce")


async def test_a_block_never_suppresses_but_raises_the_alert(db: Database) -> None:
    [reader] = await add_subscribers(db, 1)
    recorder = EventRecorder(db, Policy())
    before = counter("herald_deliverability_blocked_total", provider="postmark")
    [result] = await recorder.record(
        [event("x1", EventKind.BLOCKED, recipient="reader0@example.com")]
    )
    assert (result.stored, result.suppressed) == (True, False)
    assert await suppression(db, "reader0@example.com") is None
    assert await subscription_status(db, reader) == "confirmed"
    assert counter("herald_deliverability_blocked_total", provider="postmark") == before + 1


async def test_an_event_about_an_address_herald_never_mailed_is_stored(db: Database) -> None:
    recorder = EventRecorder(db, Policy())
    results = await recorder.record(
        [
            event("u1", EventKind.COMPLAINT, recipient="stranger@example.net", message_id="nope"),
            event("u2", EventKind.HARD_BOUNCE),  # no address at all: stored, nothing else
            event("u3", EventKind.HARD_BOUNCE, recipient="not an address"),
        ]
    )
    assert [(r.stored, r.delivery_id, r.subscriber_id) for r in results] == [(True, None, None)] * 3
    assert [r.suppressed for r in results] == [True, False, False]
    assert await suppression(db, "stranger@example.net") == ("complaint", "postmark: complaint")


async def test_an_address_already_suppressed_is_not_suppressed_again(db: Database) -> None:
    recorder = EventRecorder(db, Policy())
    await recorder.record([event("h1", EventKind.HARD_BOUNCE, recipient="gone@example.com")])
    [again] = await recorder.record(
        [event("h2", EventKind.COMPLAINT, recipient="gone@example.com")]
    )
    assert (again.stored, again.suppressed) == (True, False)
    assert await suppression(db, "gone@example.com") == ("hard_bounce", "postmark: hard bounce")


async def test_concurrent_copies_of_one_event_store_one_row(db: Database) -> None:
    [reader] = await add_subscribers(db, 1)
    recorder = EventRecorder(db, Policy())
    copies = [event("r1", EventKind.HARD_BOUNCE, recipient="reader0@example.com")] * 2
    results = await asyncio.gather(*(recorder.record([copy]) for copy in copies))
    assert sorted(r[0].stored for r in results) == [False, True]
    assert len(await events(db)) == 1
    assert await suppression(db, "reader0@example.com") == ("hard_bounce", "postmark: hard bounce")
    assert await subscription_status(db, reader) == "unsubscribed"


async def test_record_in_uses_the_callers_transaction(db: Database) -> None:
    recorder = EventRecorder(db, Policy())

    async def record_then_fail() -> None:
        async with db.transaction() as conn:
            [result] = await recorder.record_in(
                conn, [event("t1", EventKind.HARD_BOUNCE, recipient="a@example.com")]
            )
            assert result.suppressed
            raise RuntimeError("the caller's transaction fails")

    with pytest.raises(RuntimeError):
        await record_then_fail()
    assert await events(db) == []  # rolled back with the caller's work
    assert await suppression(db, "a@example.com") is None


async def test_a_deadlocked_transaction_is_recorded_again(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = EventRecorder(db, Policy())
    original = EventRecorder.record_in
    calls = 0

    async def deadlock_once(
        self: EventRecorder, conn: Connection, events: Sequence[ProviderEvent]
    ) -> list[RecordedEvent]:
        nonlocal calls
        calls += 1
        found = await original(self, conn, events)
        if calls == 1:  # after the statements ran: they roll back with the transaction
            raise asyncpg.DeadlockDetectedError("deadlock detected")
        return found

    monkeypatch.setattr(EventRecorder, "record_in", deadlock_once)
    [result] = await recorder.record([event("k1", EventKind.COMPLAINT, recipient="k@example.com")])
    assert (calls, result.stored, result.suppressed) == (2, True, True)
    assert len(await events(db)) == 1
    assert await suppression(db, "k@example.com") == ("complaint", "postmark: complaint")


async def test_a_batch_suppresses_its_addresses_in_one_statement_and_tells_the_admin(
    db: Database, database_url: str
) -> None:
    readers = await add_subscribers(db, 3)
    heard: list[str] = []
    listener = await asyncpg.connect(database_url)
    await listener.add_listener("herald_live", lambda *args: heard.append(args[-1]))
    try:
        results = await EventRecorder(db, Policy()).record(
            [
                event(f"m{n}", kind, recipient=f"reader{n}@example.com")
                for n, kind in enumerate(
                    (EventKind.HARD_BOUNCE, EventKind.COMPLAINT, EventKind.PROVIDER_UNSUBSCRIBE)
                )
            ]
            + [event("m3", EventKind.HARD_BOUNCE, recipient="READER0@example.com")]  # again
        )
        for _ in range(100):
            if len(heard) >= 3:
                break
            await asyncio.sleep(0.02)
    finally:
        await listener.close()
    assert [r.suppressed for r in results] == [True, True, True, False]
    assert [await suppression(db, f"reader{n}@example.com") for n in range(3)] == [
        ("hard_bounce", "postmark: hard bounce"),
        ("complaint", "postmark: complaint"),
        ("provider", "postmark: provider unsubscribe"),
    ]
    assert [await subscription_status(db, reader) for reader in readers] == ["unsubscribed"] * 3
    assert sorted(json.loads(h)["type"] for h in heard) == ["subscriber.unsubscribed"] * 3
    assert {json.loads(h)["subscriber_id"] for h in heard} == {str(r) for r in readers}
