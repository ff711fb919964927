"""Helpers for delivery-queue tests: fake providers, enqueueing, waiting."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence

from herald.core.db import Database
from herald.delivery import repository
from herald.email.message import Accepted, EmailMessage, SendResult


class RecordingProvider:
    """A fake provider that accepts everything and counts what it was given."""

    name = "recording"

    def __init__(self, max_batch_size: int = 50, delay: float = 0.0) -> None:
        self.max_batch_size = max_batch_size
        self.delay = delay
        self.sent: Counter[str] = Counter()
        self.messages: list[EmailMessage] = []
        self.calls = 0

    async def send_batch(self, messages: Sequence[EmailMessage]) -> list[SendResult]:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        for message in messages:
            self.sent[message.recipient] += 1
            self.messages.append(message)
        return [Accepted(f"id-{message.recipient}") for message in messages]

    async def aclose(self) -> None:
        return None


def message_to(recipient: str, subject: str = "Hello") -> EmailMessage:
    return EmailMessage(
        sender="newsletter@herald.test",
        recipient=recipient,
        subject=subject,
        html_body=f"<p>{subject}</p>",
        text_body=subject,
    )


async def enqueue_many(db: Database, count: int, *, max_attempts: int = 5) -> list[int]:
    async with db.transaction() as conn:
        return [
            await repository.enqueue(
                conn,
                kind="test",
                message=message_to(f"user{index}@example.com"),
                max_attempts=max_attempts,
            )
            for index in range(count)
        ]


async def statuses(db: Database) -> Counter[str]:
    async with db.connection() as conn:
        return Counter(await repository.status_counts(conn))


async def rows(db: Database) -> list[dict[str, object]]:
    async with db.connection() as conn:
        records = await conn.fetch(
            "SELECT id, recipient, status, attempts, leased_by, last_error, available_at"
            " FROM deliveries ORDER BY id"
        )
    return [dict(r) for r in records]


async def wait_until(
    predicate: Callable[[], bool | Awaitable[bool]],
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
) -> None:
    """Return once ``predicate()`` (a plain or an async function) is true; fail the test
    if it is still false after ``timeout`` seconds. The one way tests wait for something
    to happen — on state, never a fixed sleep: make ``timeout`` generous (it only catches
    hangs), the wait ends as soon as the state is reached."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


async def claimable(db: Database) -> bool:
    """Whether a claim would take a row now: one is queued, or its lease ran out, and its
    ``available_at`` (retry backoff, lease expiry) has passed."""
    async with db.connection() as conn:
        return bool(
            await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM deliveries"
                " WHERE status IN ('queued', 'sending') AND available_at <= now())"
            )
        )
