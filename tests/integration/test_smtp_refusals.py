"""The SMTP relay's refusals at send time, through the worker's hook to the policy: a 550
at RCPT suppresses the reader at once, a 5.7.1 at DATA is a block (the reader stays), a
4xx is retried and suppresses nothing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from herald.core.config import EmailSettings, Settings, SmtpSettings
from herald.core.db import Database
from herald.deliverability.policy import Policy
from herald.deliverability.refusals import RefusalRecorder
from herald.deliverability.service import EventRecorder
from herald.delivery.worker import DeliveryWorker
from herald.email.smtp import SmtpProvider
from herald.email.verp import Verp
from tests.support.deliverability import enqueue_to_readers
from tests.support.newsletters import add_subscribers
from tests.support.queue import rows
from tests.unit.email.test_smtp import Server, serve


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    async with serve() as running:
        yield running


@pytest.fixture
async def smtp(server: Server, settings: Settings) -> AsyncIterator[SmtpProvider]:
    email = EmailSettings(
        provider="smtp",
        timeout_seconds=2.0,
        smtp=SmtpSettings(
            host="127.0.0.1", port=server.port, tls="none", bounce_address="bounces@herald.test"
        ),
    )
    provider = SmtpProvider(email, Verp(settings, "bounces@herald.test"))
    yield provider
    await provider.aclose()


def worker(db: Database, settings: Settings, provider: SmtpProvider) -> DeliveryWorker:
    hook = RefusalRecorder(EventRecorder(db, Policy()))
    return DeliveryWorker(
        db, provider, settings.delivery, on_refused=hook.record, name=f"t-{uuid.uuid4().hex[:6]}"
    )


async def outcome(db: Database) -> list[tuple[str, str | None, str | None, bool | None]]:
    """Per reader: subscription status, suppression reason, event kind, suppressed."""
    async with db.connection() as conn:
        found = await conn.fetch(
            "SELECT s.status, p.reason, e.kind, e.suppressed"
            " FROM subscriptions AS s"
            " LEFT JOIN suppressions AS p ON p.address_key = herald_address_key(s.email)"
            " LEFT JOIN email_events AS e ON e.subscriber_id = s.id"
            " ORDER BY s.email"
        )
    return [(r["status"], r["reason"], r["kind"], r["suppressed"]) for r in found]


async def test_a_550_at_rcpt_suppresses_a_block_does_not(
    db: Database, settings: Settings, server: Server, smtp: SmtpProvider
) -> None:
    readers = await add_subscribers(db, 3)
    ids = await enqueue_to_readers(db, readers)
    server.handler.rcpt_replies = {
        "reader0@example.com": "550 5.1.1 <reader0@example.com>: Recipient address rejected",
    }
    server.handler.data_replies = {
        "reader1@example.com": "554 5.7.1 Service unavailable; client host blocked using zen",
    }

    report = await worker(db, settings, smtp).run_once()

    assert (report.sent, report.failed) == (1, 2)
    assert await outcome(db) == [
        ("unsubscribed", "hard_bounce", "hard_bounce", True),
        ("confirmed", None, "blocked", False),
        ("confirmed", None, None, None),
    ]
    async with db.connection() as conn:
        stored = await conn.fetch(
            "SELECT provider, provider_event_id, delivery_id, detail FROM email_events ORDER BY id"
        )
    found = [(r["provider"], r["provider_event_id"], r["delivery_id"]) for r in stored]
    assert sorted(found, key=lambda e: e[2]) == [
        ("smtp", f"smtp:{ids[0]}:1", ids[0]),
        ("smtp", f"smtp:{ids[1]}:1", ids[1]),
    ]
    assert any("RCPT TO: 550 5.1.1" in r["detail"] for r in stored)
    # The message that went out carried its delivery's signed return path.
    [(mail_from, _, _)] = server.handler.delivered
    assert Verp(settings, "bounces@herald.test").delivery_of(mail_from) == ids[2]


async def test_a_4xx_is_retried_and_suppresses_nothing(
    db: Database, settings: Settings, server: Server, smtp: SmtpProvider
) -> None:
    readers = await add_subscribers(db, 1)
    await enqueue_to_readers(db, readers)
    server.handler.rcpt_replies = {"reader0@example.com": "450 4.2.1 Mailbox busy, try later"}

    report = await worker(db, settings, smtp).run_once()

    assert (report.retried, report.failed) == (1, 0)
    [row] = await rows(db)
    assert row["status"] == "queued"
    assert await outcome(db) == [("confirmed", None, None, None)]
