"""Bounce messages to VERP return paths, recorded: a hard bounce suppresses the delivery's
reader (whatever address the bounce names), a replay changes nothing, a forged or foreign
return path and what is no bounce are ignored, a block and a delay never suppress."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import pytest

from herald.core.config import Settings
from herald.core.db import Database
from herald.deliverability.bounces import BounceReader, Ingested, Outcome, record_bounce
from herald.deliverability.domain import EventKind
from herald.deliverability.policy import Policy
from herald.deliverability.refusals import RefusalRecorder
from herald.deliverability.service import EventRecorder
from herald.email.message import PermanentFailure, SmtpReply
from herald.email.verp import Verp
from tests.support.deliverability import sent_delivery
from tests.support.newsletters import add_subscribers

FIXTURES = Path(__file__).parent.parent / "fixtures" / "bounces"
PLACEHOLDER = b"bounces+42.0123456789abcdef@news.example.org"


def verp_of(settings: Settings) -> Verp:
    return Verp(settings, "bounces@news.example.org")


def bounce(name: str, return_path: str) -> bytes:
    return (FIXTURES / name).read_bytes().replace(PLACEHOLDER, return_path.encode())


async def state(db: Database, email: str) -> tuple[str | None, str | None, list[str]]:
    """The address's subscription status, suppression reason, and its events' kinds."""
    async with db.connection() as conn:
        status = await conn.fetchval("SELECT status FROM subscriptions WHERE email = $1", email)
        reason = await conn.fetchval(
            "SELECT reason FROM suppressions WHERE address_key = herald_address_key($1)", email
        )
        kinds = await conn.fetch(
            "SELECT kind FROM email_events WHERE address_key = herald_address_key($1) ORDER BY id",
            email,
        )
    return status, reason, [row["kind"] for row in kinds]


async def event_count(db: Database) -> int:
    async with db.connection() as conn:
        count: int = await conn.fetchval("SELECT count(*) FROM email_events")
    return count


class BounceIngest:
    """What ``herald bounces ingest`` does with one bounce: read and check it, then, only
    if it is usable, record it."""

    def __init__(self, recorder: EventRecorder, verp: Verp) -> None:
        self._recorder = recorder
        self._reader = BounceReader(verp)

    async def ingest(self, raw: bytes, *, recipients: Sequence[str] = ()) -> Ingested:
        read = self._reader.read(raw, recipients=recipients)
        if isinstance(read, Ingested):
            return read
        return await record_bounce(self._recorder, read)


@pytest.fixture
def ingest(db: Database, settings: Settings) -> BounceIngest:
    return BounceIngest(EventRecorder(db, Policy()), verp_of(settings))


@pytest.mark.parametrize(
    "name", ["postfix_user_unknown.eml", "exim_user_unknown.eml", "gmail_no_such_user.eml"]
)
async def test_a_hard_bounce_suppresses_the_deliverys_reader(
    db: Database, settings: Settings, ingest: BounceIngest, name: str
) -> None:
    [reader] = await add_subscribers(db, 1)
    delivery = await sent_delivery(db, reader, "reader0@example.com")

    result = await ingest.ingest(bounce(name, verp_of(settings).address(delivery)))

    assert (result.outcome, result.delivery_id, result.kind) == (
        Outcome.RECORDED,
        delivery,
        EventKind.HARD_BOUNCE,
    )
    assert result.suppressed
    # The bounce names ada@example.net (or a Gmail address): the reader of the delivery is
    # who bounced, and no address the bounce's writer chose is touched.
    assert await state(db, "reader0@example.com") == (
        "unsubscribed",
        "hard_bounce",
        ["hard_bounce"],
    )
    async with db.connection() as conn:
        others = await conn.fetchval("SELECT count(*) FROM suppressions")
        source = await conn.fetchval("SELECT source FROM suppressions")
    assert others == 1
    assert "smtp" in source

    again = await ingest.ingest(bounce(name, verp_of(settings).address(delivery)))
    assert again.outcome is Outcome.REPLAY
    assert await event_count(db) == 1


async def test_a_forged_or_foreign_return_path_is_ignored(
    db: Database, settings: Settings, ingest: BounceIngest
) -> None:
    add = await add_subscribers(db, 2)
    mine = await sent_delivery(db, add[0], "reader0@example.com")
    victim = await sent_delivery(db, add[1], "reader1@example.com")
    signature = verp_of(settings).address(mine).split(".", 1)[1].split("@")[0]

    forged = f"bounces+{victim}.{signature}@news.example.org"  # my signature, their delivery
    result = await ingest.ingest(bounce("postfix_user_unknown.eml", forged))
    assert result.outcome is Outcome.IGNORED
    assert "forged" in result.reason

    elsewhere = await ingest.ingest(bounce("postfix_user_unknown.eml", "someone@example.org"))
    assert elsewhere.outcome is Outcome.IGNORED
    assert "no VERP address" in elsewhere.reason

    assert await event_count(db) == 0
    assert await state(db, "reader1@example.com") == ("confirmed", None, [])


async def test_the_mtas_recipient_is_believed_before_the_headers(
    db: Database, settings: Settings, ingest: BounceIngest
) -> None:
    [reader] = await add_subscribers(db, 1)
    delivery = await sent_delivery(db, reader, "reader0@example.com")
    raw = bounce("postfix_user_unknown.eml", "someone@example.org")  # headers name no VERP

    result = await ingest.ingest(raw, recipients=[verp_of(settings).address(delivery)])

    assert (result.outcome, result.delivery_id) == (Outcome.RECORDED, delivery)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("outlook_blocked.eml", EventKind.BLOCKED),
        ("postfix_delayed.eml", EventKind.DEFERRED),
        ("postfix_mailbox_full.eml", EventKind.SOFT_BOUNCE),
    ],
)
async def test_blocks_delays_and_a_first_soft_bounce_never_suppress(
    db: Database, settings: Settings, ingest: BounceIngest, name: str, kind: EventKind
) -> None:
    [reader] = await add_subscribers(db, 1)
    delivery = await sent_delivery(db, reader, "reader0@example.com")

    result = await ingest.ingest(bounce(name, verp_of(settings).address(delivery)))

    assert (result.outcome, result.kind, result.suppressed) == (Outcome.RECORDED, kind, False)
    assert await state(db, "reader0@example.com") == ("confirmed", None, [kind.value])


async def test_what_is_no_bounce_is_ignored(
    db: Database, settings: Settings, ingest: BounceIngest
) -> None:
    [reader] = await add_subscribers(db, 1)
    delivery = await sent_delivery(db, reader, "reader0@example.com")
    address = verp_of(settings).address(delivery)

    for raw in (bounce("out_of_office.eml", address), b"", b"\xff" * 1000):
        result = await ingest.ingest(raw, recipients=[address])
        assert result.outcome is Outcome.IGNORED
    assert await event_count(db) == 0


async def test_a_non_standard_bounce_is_recorded(
    db: Database, settings: Settings, ingest: BounceIngest
) -> None:
    [reader] = await add_subscribers(db, 1)
    delivery = await sent_delivery(db, reader, "reader0@example.com")

    result = await ingest.ingest(bounce("qmail_failure.eml", verp_of(settings).address(delivery)))

    assert (result.outcome, result.kind, result.suppressed) == (
        Outcome.RECORDED,
        EventKind.HARD_BOUNCE,
        True,
    )


async def test_a_nul_in_the_remote_server_s_diagnostic_is_dropped_not_a_failure(
    db: Database, settings: Settings, ingest: BounceIngest
) -> None:
    """The diagnostic is the remote server's text (whoever runs it): a NUL in it, which
    Postgres text cannot hold, must not make every offer of the bounce fail (exit 75)."""
    [reader] = await add_subscribers(db, 1)
    delivery = await sent_delivery(db, reader, "reader0@example.com")
    raw = bounce("postfix_user_unknown.eml", verp_of(settings).address(delivery))
    raw = raw.replace(b"smtp; 550", b"smtp; " + b"\x00" * 50 + b"550", 1)

    result = await ingest.ingest(raw)

    assert (result.outcome, result.kind, result.suppressed) == (
        Outcome.RECORDED,
        EventKind.HARD_BOUNCE,
        True,
    )
    async with db.connection() as conn:
        detail: str = await conn.fetchval("SELECT detail FROM email_events")
    assert "550 5.1.1" in detail
    assert "\x00" not in detail


async def test_the_same_bounce_twice_at_once_is_one_event(
    db: Database, settings: Settings, ingest: BounceIngest
) -> None:
    readers = await add_subscribers(db, 1)
    delivery = await sent_delivery(db, readers[0], "reader0@example.com")
    raw = bounce("postfix_user_unknown.eml", verp_of(settings).address(delivery))

    results = await asyncio.gather(*(ingest.ingest(raw) for _ in range(4)))

    assert sorted(r.outcome for r in results) == [
        Outcome.RECORDED,
        Outcome.REPLAY,
        Outcome.REPLAY,
        Outcome.REPLAY,
    ]
    assert await event_count(db) == 1
    assert await state(db, "reader0@example.com") == (
        "unsubscribed",
        "hard_bounce",
        ["hard_bounce"],
    )


async def test_a_refusal_and_a_later_bounce_of_one_delivery_are_two_events(
    db: Database, settings: Settings, ingest: BounceIngest
) -> None:
    """The relay refused at once and its MTA also sent a bounce: both are kept, the address
    is suppressed once."""
    [reader] = await add_subscribers(db, 1)
    delivery = await sent_delivery(db, reader, "reader0@example.com")
    hook = RefusalRecorder(EventRecorder(db, Policy()))
    refused = SimpleNamespace(id=delivery, attempts=1, recipient="reader0@example.com")
    reply = SmtpReply("RCPT TO", 550, "5.1.1 No such user")

    await hook.record([(refused, PermanentFailure("SMTP 550", reply))])
    result = await ingest.ingest(
        bounce("exim_user_unknown.eml", verp_of(settings).address(delivery))
    )

    assert (result.outcome, result.suppressed) == (Outcome.RECORDED, False)  # already listed
    assert await state(db, "reader0@example.com") == (
        "unsubscribed",
        "hard_bounce",
        ["hard_bounce", "hard_bounce"],
    )
