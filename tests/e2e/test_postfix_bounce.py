"""The whole path of a bounce through a real MTA: Herald sends over SMTP with its signed
VERP return path to a private Postfix (Debian's package), which relays to a server that
refuses the recipient; the delivery status notification Postfix writes comes back to
the return path, and ``herald bounces ingest`` (a real process) records it: the reader
is suppressed, the other reader is not."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from herald.composition.worker import event_recorder
from herald.core.config import EmailSettings, Settings, SmtpSettings
from herald.core.db import Database
from herald.deliverability.refusals import RefusalRecorder
from herald.delivery.worker import DeliveryWorker
from herald.email.smtp import SmtpProvider
from herald.email.verp import Verp
from tests.e2e.test_bounce_pipe import BOUNCE_ADDRESS, ingest, pipe_env, suppressed
from tests.support.database import free_port
from tests.support.deliverability import enqueue_to_readers
from tests.support.newsletters import add_subscribers
from tests.support.postfix import postfix
from tests.support.queue import wait_until
from tests.unit.email.test_smtp import Server, serve


@pytest.fixture
async def mx() -> AsyncIterator[Server]:
    """The remote server: it refuses reader0 at RCPT, takes everything else."""
    async with serve() as server:
        server.handler.rcpt_replies = {
            "reader0@example.com": "550 5.1.1 <reader0@example.com>: Recipient address rejected:"
            " User unknown in virtual mailbox table"
        }
        yield server


@pytest.mark.slow
async def test_a_postfix_bounce_comes_back_and_suppresses_the_reader(
    database_url: str, db: Database, settings: Settings, mx: Server, tmp_path: Path
) -> None:
    port = free_port()
    with postfix(port=port, relay_port=mx.port) as maillog:
        readers = await add_subscribers(db, 2)
        ids = await enqueue_to_readers(db, readers)
        verp = Verp(settings, BOUNCE_ADDRESS)
        email = EmailSettings(
            provider="smtp",
            timeout_seconds=10,
            smtp=SmtpSettings(host="127.0.0.1", port=port, tls="none"),
        )
        provider = SmtpProvider(email, verp)
        try:
            worker = DeliveryWorker(
                db,
                provider,
                settings.delivery,
                on_refused=RefusalRecorder(event_recorder(db, settings)).record,
                name=f"t-{uuid.uuid4().hex[:6]}",
            )
            report = await worker.run_once()
        finally:
            await provider.aclose()
        assert report.sent == 2  # Postfix took both: the refusal comes later, by mail

        def returned() -> list[bytes]:
            return [
                content
                for mail_from, rcpt, content in mx.handler.delivered
                if mail_from in ("", "<>") and rcpt == [verp.address(ids[0])]  # the null sender
            ]

        await wait_until(lambda: bool(returned()), timeout=60)
        log = maillog.read_text()
    assert "dsn=5.1.1, status=bounced" in log
    [dsn] = returned()
    assert b"report-type=delivery-status" in dsn
    assert (await suppressed(db, "reader0@example.com")) is None  # not before the bounce

    code, out, err = await ingest(pipe_env(database_url, tmp_path), dsn)

    assert code == 0, err
    assert out.strip() == f"bounce recorded: delivery {ids[0]}, hard_bounce (address suppressed)"
    assert await suppressed(db, "reader0@example.com") == "hard_bounce"
    assert await suppressed(db, "reader1@example.com") is None
