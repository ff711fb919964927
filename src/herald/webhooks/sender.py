"""Delivering webhook messages: a loop in every worker process (``herald worker``, ``up``).

Each turn claims up to ``batch_size`` due messages under a lease (``claim_due``: ``FOR
UPDATE SKIP LOCKED``, so workers share the outbox), sends them at once, each signed for
its own attempt, and records each outcome fenced by the lease token, together with the
attempt's row and the endpoint's run of failures, in one transaction per message. A
killed sender's messages come back when the lease runs out (at-least-once; the
``webhook-id`` stays, so receivers can deduplicate).

An attempt is one ``POST`` with ``HERALD_WEBHOOKS__TIMEOUT_SECONDS`` for all of it
(connecting to the last byte read); redirects are not followed (a 3xx is a failure that
names its ``Location``), at most :data:`~herald.webhooks.domain.READ_LIMIT` bytes of the
response are read and an excerpt of 500 characters is kept. 2xx is delivered; anything
else is retried with the delivery queue's backoff (``delivery.domain.backoff_seconds``,
a 429's or 503's ``Retry-After`` honoured) until ``max_attempts``, then failed. When every
attempt to an endpoint has failed for ``disable_after_hours`` and at least
``disable_after_failures`` in a row did, the endpoint is disabled (its notice in the
admin, a warning in the log) and its waiting messages are failed, replayable later.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import aiohttp

from herald import __version__
from herald.core.config import WebhookSettings
from herald.core.db import Database
from herald.core.errors import Unavailable
from herald.core.telemetry import get_logger
from herald.core.waiting import sleep_or_stop
from herald.delivery.domain import backoff_seconds
from herald.webhooks import repository
from herald.webhooks.domain import (
    DISABLED_PENDING,
    MAX_ERROR,
    READ_LIMIT,
    AttemptResult,
    ClaimedMessage,
    MessageStatus,
    clip,
    excerpt,
    gives_up,
    signed_headers,
)
from herald.webhooks.metrics import ATTEMPTS, DISABLED

log = get_logger("herald.webhooks")

USER_AGENT = f"Herald-Webhooks/{__version__}"
_OUTCOME = {
    MessageStatus.DELIVERED: "delivered",
    MessageStatus.PENDING: "retry",
    MessageStatus.FAILED: "failed",
}


def disable_reason(settings: WebhookSettings, failures: int) -> str:
    hours = settings.disable_after_hours
    return (
        f"Disabled by Herald: {failures} attempts in a row failed"
        + (f" over at least {hours:g} hours" if hours else "")
        + ". Fix the receiver, then enable the endpoint and replay the failed messages."
    )


class WebhookSender:
    def __init__(self, db: Database, settings: WebhookSettings) -> None:
        self._db = db
        self._settings = settings
        # The lease outlives an attempt by far: a live sender never loses its messages.
        self._lease_seconds = max(60.0, settings.timeout_seconds * 3 + 10)
        self._session: aiohttp.ClientSession | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and send until ``stop`` is set, then finish the sends in hand.

        Up to ``batch_size`` sends are in flight; a free slot is filled as soon as a send
        ends, so one receiver that answers slowly (or not at all, until the timeout) holds
        its own slots, not a whole batch of other endpoints' messages.
        """
        capacity = self._settings.batch_size
        poll = self._settings.poll_interval_seconds
        in_flight: dict[asyncio.Task[None], int] = {}
        try:
            while not stop.is_set():
                free = capacity - len(in_flight)
                claimed = await self._claim(free) if free > 0 else []
                for message, token in claimed:
                    task = asyncio.create_task(self._deliver(message, token))
                    in_flight[task] = message.id
                if len(claimed) == free and free > 0:
                    continue  # more may be due: fill the remaining slots first
                if not in_flight:
                    await sleep_or_stop(stop, poll)
                    continue
                done, _ = await asyncio.wait(
                    in_flight, timeout=poll, return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    _log_failure(in_flight.pop(task), task)
            if in_flight:  # each ends within the attempt's timeout and one write
                for outcome in await asyncio.gather(*in_flight, return_exceptions=True):
                    if isinstance(outcome, BaseException):
                        log.error("webhooks: delivery failed at shutdown", exc_info=outcome)
        finally:
            await self.aclose()

    async def _claim(self, limit: int) -> list[tuple[ClaimedMessage, uuid.UUID]]:
        token = uuid.uuid4()
        try:
            async with self._db.transaction() as conn:
                claimed = await repository.claim_due(conn, limit, self._lease_seconds, token)
        except Unavailable:
            log.warning("webhooks: database unavailable, retrying")
            return []
        except Exception:  # a bad claim must not end the loop
            log.exception("webhooks: claim failed")
            return []
        return [(message, token) for message in claimed]

    async def turn(self) -> int:
        """One claim of up to ``batch_size`` and its sends, all awaited (for tests and
        tools); how many messages were claimed."""
        claimed = await self._claim(self._settings.batch_size)
        if claimed:
            outcomes = await asyncio.gather(
                *(self._deliver(message, token) for message, token in claimed),
                return_exceptions=True,
            )
            for (message, _), outcome in zip(claimed, outcomes, strict=True):
                if isinstance(outcome, BaseException):  # its lease runs out: sent again later
                    log.error("webhooks: delivery failed", message_id=message.id, exc_info=outcome)
        return len(claimed)

    async def _deliver(self, message: ClaimedMessage, token: uuid.UUID) -> None:
        result = await self.attempt(message)
        await self._record(message, token, result)

    async def attempt(self, message: ClaimedMessage) -> AttemptResult:
        """One signed POST of ``message``; never raises for what the receiver does."""
        body = message.payload.encode()
        headers = signed_headers(message.secret, message.webhook_id, int(time.time()), body)
        headers["user-agent"] = USER_AGENT
        started = time.monotonic()

        def took() -> int:
            return int((time.monotonic() - started) * 1000)

        timeout = self._settings.timeout_seconds
        try:
            async with self._client().post(
                message.url, data=body, headers=headers, allow_redirects=False
            ) as response:
                read = await response.content.read(READ_LIMIT)
                error = ""
                retry_after: float | None = None
                if 300 <= response.status < 400:
                    where = response.headers.get("Location", "")
                    error = clip(f"redirect to {where!r} not followed", MAX_ERROR)
                elif not 200 <= response.status < 300:
                    error = f"HTTP {response.status}"
                    asked = response.headers.get("Retry-After", "").strip()
                    if (
                        asked.isascii()
                        and asked.isdigit()
                        and len(asked) <= 6
                        and response.status in (429, 503)
                    ):
                        retry_after = float(asked)
                return AttemptResult(response.status, error, excerpt(read), took(), retry_after)
        except TimeoutError:
            return AttemptResult(None, f"no answer within {timeout:g} s", "", took())
        except aiohttp.InvalidURL:
            return AttemptResult(None, "invalid URL", "", took())
        except aiohttp.ClientError as exc:
            return AttemptResult(None, clip(_describe(exc), MAX_ERROR), "", took())
        except (OSError, ValueError) as exc:
            return AttemptResult(None, clip(_describe(exc), MAX_ERROR), "", took())

    async def _record(
        self, message: ClaimedMessage, token: uuid.UUID, result: AttemptResult
    ) -> None:
        settings = self._settings
        if result.succeeded:
            status, retry_in = MessageStatus.DELIVERED, 0.0
        elif gives_up(message.attempts, settings.max_attempts):
            status, retry_in = MessageStatus.FAILED, 0.0
        else:
            status = MessageStatus.PENDING
            retry_in = backoff_seconds(
                message.attempts,
                base=settings.retry_base_seconds,
                cap=settings.retry_max_seconds,
                retry_after=result.retry_after,
            )
        error = result.error
        if status is MessageStatus.FAILED:
            error = clip(f"{error} (gave up after {message.attempts} attempts)", MAX_ERROR)
        for attempt in range(3):  # a sent message's outcome is worth a retry or two
            try:
                await self._write(message, token, result, status, retry_in, error)
            except Unavailable:
                if attempt == 2:
                    log.warning("webhooks: outcome not recorded", message_id=message.id)
                    return
                await asyncio.sleep(0.5 * (attempt + 1))
            else:
                return

    async def _write(
        self,
        message: ClaimedMessage,
        token: uuid.UUID,
        result: AttemptResult,
        status: MessageStatus,
        retry_in: float,
        error: str,
    ) -> None:
        settings = self._settings
        async with self._db.transaction() as conn:
            fenced = await repository.record_attempt(
                conn, message, token, result, status=status, retry_in=retry_in, error=error
            )
            if not fenced:
                log.warning("webhooks: lease lost, outcome dropped", message_id=message.id)
                return
            ATTEMPTS.labels(outcome=_OUTCOME[status]).inc()
            if result.succeeded:
                await repository.endpoint_succeeded(conn, message.endpoint_id)
                return
            disabled, enabled, failures = await repository.endpoint_failed(
                conn,
                message.endpoint_id,
                after_seconds=settings.disable_after_hours * 3600,
                after_failures=settings.disable_after_failures,
                reason=disable_reason(settings, settings.disable_after_failures),
            )
            if not enabled:  # this message's retry too, and any other not in flight
                await repository.fail_pending(conn, message.endpoint_id, DISABLED_PENDING)
        if disabled:
            DISABLED.inc()
            log.warning(
                "webhook endpoint disabled after repeated failures",
                endpoint_id=str(message.endpoint_id),
                failures=failures,
            )

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._settings.timeout_seconds),
                connector=aiohttp.TCPConnector(limit=64),
                auto_decompress=False,
                skip_auto_headers=("Accept-Encoding",),
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            with contextlib.suppress(Exception):
                await self._session.close()
            self._session = None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


def _log_failure(message_id: int, task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:  # its lease brings it back
        log.error("webhooks: delivery failed", message_id=message_id, exc_info=task.exception())
