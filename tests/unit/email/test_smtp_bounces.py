"""What the SMTP provider does for bounce handling: a signed VERP envelope sender per
delivery, and a 5xx refusal kept with its command, code and text."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from herald.core.config import EmailSettings, Settings, SmtpSettings
from herald.email.message import Accepted, PermanentFailure, SmtpReply, TransientFailure
from herald.email.smtp import SmtpProvider
from herald.email.verp import Verp
from tests.unit.email.test_smtp import Server, message, serve


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    async with serve() as running:
        yield running


def provider(port: int, bounce_address: str | None) -> tuple[SmtpProvider, Verp | None]:
    settings = Settings(
        secret_key=SecretStr("s" * 48),
        email=EmailSettings(
            provider="smtp",
            timeout_seconds=2.0,
            smtp=SmtpSettings(
                host="127.0.0.1", port=port, tls="none", bounce_address=bounce_address
            ),
        ),
    )
    verp = Verp.configured(settings)
    return SmtpProvider(settings.email, verp), verp


async def test_each_delivery_gets_its_signed_return_path(server: Server) -> None:
    smtp, verp = provider(server.port, "bounces@herald.test")
    assert verp is not None
    try:
        results = await smtp.send_batch(
            [message(1).for_delivery(41), message(2).for_delivery(42), message(3)]
        )
    finally:
        await smtp.aclose()

    assert all(isinstance(r, Accepted) for r in results)
    senders = {rcpt[0]: mail_from for mail_from, rcpt, _ in server.handler.delivered}
    assert verp.delivery_of(senders["reader1@example.test"]) == 41
    assert verp.delivery_of(senders["reader2@example.test"]) == 42
    # No delivery id (a message sent outside the queue): the sender's own address.
    assert senders["reader3@example.test"] == "news@herald.test"
    # The From header is untouched: only the envelope changes.
    content = {rcpt[0]: data for _, rcpt, data in server.handler.delivered}
    assert b"From: Herald <news@herald.test>\r\n" in content["reader1@example.test"]


async def test_without_a_bounce_address_the_envelope_is_the_sender(server: Server) -> None:
    smtp, verp = provider(server.port, None)
    assert verp is None
    try:
        await smtp.send_batch([message(1).for_delivery(41)])
    finally:
        await smtp.aclose()
    [(mail_from, _, _)] = server.handler.delivered
    assert mail_from == "news@herald.test"


async def test_a_5xx_keeps_the_refusal_a_4xx_is_transient(server: Server) -> None:
    server.handler.rcpt_replies = {
        "reader1@example.test": "550 5.1.1 <reader1@example.test>: Recipient address rejected",
        "reader2@example.test": "450 4.2.1 Mailbox busy",
    }
    server.handler.data_replies = {
        "reader3@example.test": "554 5.7.1 Message rejected as spam",
    }
    smtp, _ = provider(server.port, None)
    try:
        unknown, busy, spam, ok = await smtp.send_batch([message(n) for n in (1, 2, 3, 4)])
    finally:
        await smtp.aclose()

    assert isinstance(unknown, PermanentFailure)
    assert unknown.refusal == SmtpReply(
        "RCPT TO", 550, "5.1.1 <reader1@example.test>: Recipient address rejected"
    )
    assert unknown.error.endswith("(RCPT TO)")
    assert isinstance(busy, TransientFailure)
    assert isinstance(spam, PermanentFailure)
    assert spam.refusal == SmtpReply("DATA", 554, "5.7.1 Message rejected as spam")
    assert isinstance(ok, Accepted)


async def test_a_refused_sender_is_a_refusal_of_mail_from(server: Server) -> None:
    async def refuse_sender(*_args: object) -> str:
        return "553 5.7.1 Sender address rejected: not owned by user"

    server.handler.handle_MAIL = refuse_sender  # type: ignore[attr-defined]
    smtp, _ = provider(server.port, "bounces@herald.test")
    try:
        [refused] = await smtp.send_batch([message(1).for_delivery(7)])
    finally:
        await smtp.aclose()
    assert isinstance(refused, PermanentFailure)
    assert refused.refusal is not None
    assert (refused.refusal.command, refused.refusal.code) == ("MAIL FROM", 553)


async def test_a_message_that_cannot_be_sent_is_no_refusal(server: Server) -> None:
    smtp, _ = provider(server.port, None)
    try:
        [bad] = await smtp.send_batch([message(1, recipient="a\r\nRCPT TO:<x@y>")])
    finally:
        await smtp.aclose()
    assert isinstance(bad, PermanentFailure)
    assert bad.refusal is None
