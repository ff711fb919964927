"""The worker's refusal hook: rows a mail server refused for good are handed over once
recorded; a batch without such failures never calls it; every message carries its
delivery id to the provider."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from herald.core.config import Settings
from herald.core.db import Database
from herald.core.errors import Unavailable
from herald.delivery.domain import ClaimedDelivery
from herald.delivery.worker import DeliveryWorker
from herald.email.message import (
    Accepted,
    EmailMessage,
    PermanentFailure,
    SendResult,
    SmtpReply,
    TransientFailure,
)
from tests.support.queue import enqueue_many, rows

REFUSAL = SmtpReply("RCPT TO", 550, "5.1.1 <user1@example.com>: Recipient address rejected")


class ScriptedProvider:
    """Answers by recipient: a refusal, a plain permanent failure, a 4xx, else accepted."""

    name = "scripted"
    max_batch_size = 50

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def send_batch(self, messages: Sequence[EmailMessage]) -> list[SendResult]:
        self.messages.extend(messages)
        answers: list[SendResult] = []
        for message in messages:
            if message.recipient == "user1@example.com":
                answers.append(PermanentFailure("SMTP 550: refused", refusal=REFUSAL))
            elif message.recipient == "user2@example.com":
                answers.append(PermanentFailure("Postmark ErrorCode 300: invalid"))
            elif message.recipient == "user3@example.com":
                answers.append(TransientFailure("SMTP 451: try later"))
            else:
                answers.append(Accepted())
        return answers

    async def aclose(self) -> None:
        return None


def worker(db: Database, settings: Settings, provider: object, hook: object) -> DeliveryWorker:
    return DeliveryWorker(
        db,
        provider,  # type: ignore[arg-type]
        settings.delivery,
        on_refused=hook,  # type: ignore[arg-type]
        name=f"test-{uuid.uuid4().hex[:6]}",
    )


async def test_refused_rows_reach_the_hook_after_they_are_recorded(
    db: Database, settings: Settings
) -> None:
    ids = await enqueue_many(db, 5)
    seen: list[tuple[ClaimedDelivery, PermanentFailure, str]] = []

    async def hook(refused: Sequence[tuple[ClaimedDelivery, PermanentFailure]]) -> None:
        for delivery, failure in refused:
            async with db.connection() as conn:
                status = await conn.fetchval(
                    "SELECT status FROM deliveries WHERE id = $1", delivery.id
                )
            seen.append((delivery, failure, status))

    provider = ScriptedProvider()
    report = await worker(db, settings, provider, hook).run_once()

    assert (report.sent, report.failed, report.retried) == (2, 2, 1)
    [(delivery, failure, status)] = seen
    assert delivery.recipient == "user1@example.com"
    assert delivery.attempts == 1
    assert failure.refusal == REFUSAL
    assert status == "failed"  # the hook runs once the row's result is written
    assert sorted(m.delivery_id for m in provider.messages if m.delivery_id) == ids


async def test_a_batch_without_permanent_failures_never_calls_the_hook(
    db: Database, settings: Settings
) -> None:
    await enqueue_many(db, 1)  # user0: accepted
    calls: list[object] = []

    async def hook(refused: Sequence[tuple[ClaimedDelivery, PermanentFailure]]) -> None:
        calls.append(refused)

    report = await worker(db, settings, ScriptedProvider(), hook).run_once()
    assert report.sent == 1
    assert calls == []


async def test_a_failing_hook_never_undoes_the_batch(db: Database, settings: Settings) -> None:
    await enqueue_many(db, 2)  # user1 refused

    async def hook(_refused: Sequence[tuple[ClaimedDelivery, PermanentFailure]]) -> None:
        raise Unavailable("database down")

    report = await worker(db, settings, ScriptedProvider(), hook).run_once()

    assert (report.sent, report.failed) == (1, 1)
    assert sorted(str(r["status"]) for r in await rows(db)) == ["failed", "sent"]

    async def broken(_refused: Sequence[tuple[ClaimedDelivery, PermanentFailure]]) -> None:
        raise RuntimeError("a bug")

    await enqueue_many(db, 2)
    report = await worker(db, settings, ScriptedProvider(), broken).run_once()
    assert (report.sent, report.failed) == (1, 1)
