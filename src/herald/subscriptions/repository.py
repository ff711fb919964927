"""The only door to ``subscriptions``, ``subscription_tokens`` and a subscriber's
``list_memberships`` (a sign-up's, a confirmation's)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from herald.core import sql
from herald.core.db import Connection
from herald.lists.domain import OptIn
from herald.subscriptions.domain import NewSubscriber, SubscriptionStatus, SuppressionReason
from herald.subscriptions.listing import Cursor, ListFilter, Sort, TimelineEvent
from herald.subscriptions.signup import ChosenList, Consent

Q = sql.load("herald.subscriptions")


@dataclass(frozen=True, slots=True)
class Subscription:
    id: uuid.UUID
    email: str
    name: str
    status: SubscriptionStatus


@dataclass(frozen=True, slots=True)
class TokenLookup:
    subscriber_id: uuid.UUID
    expired: bool
    status: SubscriptionStatus


async def lock_by_email(conn: Connection, email: str) -> Subscription | None:
    row = await conn.fetchrow(Q["find_by_email_for_update"], email)
    if row is None:
        return None
    return Subscription(row["id"], row["email"], row["name"], SubscriptionStatus(row["status"]))


@dataclass(frozen=True, slots=True)
class SignUpContext:
    suppressed: SuppressionReason | None
    lists: dict[str, ChosenList]  # by slug: the lists named that may be joined
    # The new address's id and status when the statement inserted it; None: nothing
    # written (the address exists, a list may not be joined, or it is suppressed).
    inserted: uuid.UUID | None
    status: SubscriptionStatus | None


async def sign_up(
    conn: Connection,
    new: NewSubscriber,
    slugs: Sequence[str],
    consent: Consent,
    *,
    implicit_default: bool,
    refuse_any_suppression: bool,
    double_opt_in: bool,
    token_hash: bytes,
    ttl_seconds: float,
) -> SignUpContext:
    """A new address with its memberships (and its token, unless every list is single
    opt-in) in one statement, when it may be written; what the sign-up found either way
    (``queries.sql``: ``sign_up``)."""
    row = await conn.fetchrow(
        Q["sign_up"],
        uuid.uuid4(),
        new.email.value,
        new.name.value,
        list(slugs),
        implicit_default,
        consent.source,
        consent.ip,
        consent.user_agent,
        token_hash,
        ttl_seconds,
        refuse_any_suppression,
        double_opt_in,
    )
    assert row is not None  # one row always
    found = zip(row["ids"], row["slugs"], row["opt_ins"], strict=True)
    return SignUpContext(
        SuppressionReason(row["suppressed"]) if row["suppressed"] is not None else None,
        {slug: ChosenList(list_id, slug, OptIn(opt_in)) for list_id, slug, opt_in in found},
        row["inserted"],
        SubscriptionStatus(row["status"]) if row["status"] is not None else None,
    )


async def upsert_memberships(
    conn: Connection,
    subscriber_id: uuid.UUID,
    lists: Sequence[ChosenList],
    confirm_now: Sequence[bool],
    consent: Consent,
) -> list[SubscriptionStatus]:
    """The chosen lists joined again by a known address; the status of each membership
    written (a confirmed one is left alone and not returned)."""
    rows = await conn.fetch(
        Q["upsert_memberships"],
        subscriber_id,
        [chosen.id for chosen in lists],
        list(confirm_now),
        consent.source,
        consent.ip,
        consent.user_agent,
    )
    return [SubscriptionStatus(row["status"]) for row in rows]


async def pending_memberships(conn: Connection, subscriber_id: uuid.UUID) -> int:
    count: int = await conn.fetchval(Q["pending_memberships"], subscriber_id)
    return count


async def set_pending(conn: Connection, subscriber_id: uuid.UUID, name: str) -> None:
    await conn.execute(Q["set_pending"], subscriber_id, name)


async def insert_token(
    conn: Connection, token_hash: bytes, subscriber_id: uuid.UUID, ttl_seconds: float
) -> None:
    await conn.execute(Q["insert_token"], token_hash, subscriber_id, ttl_seconds)


async def confirmations_since(conn: Connection, subscriber_id: uuid.UUID, seconds: float) -> int:
    count: int = await conn.fetchval(Q["confirmations_since"], subscriber_id, seconds)
    return count


async def lock_token(conn: Connection, token_hash: bytes) -> TokenLookup | None:
    row = await conn.fetchrow(Q["find_token_for_update"], token_hash)
    if row is None:
        return None
    return TokenLookup(row["subscriber_id"], row["expired"], SubscriptionStatus(row["status"]))


async def confirm(conn: Connection, subscriber_id: uuid.UUID) -> tuple[bool, int]:
    """Confirm the address (if pending) and its pending memberships; lift its suppression
    as "unsubscribed". (whether the address changed, how many memberships did)."""
    row = await conn.fetchrow(Q["confirm"], subscriber_id)
    assert row is not None  # always one row
    return bool(row["address"]), int(row["lists"])


@dataclass(frozen=True, slots=True)
class SubscriptionView:
    id: uuid.UUID
    email: str
    name: str
    status: SubscriptionStatus
    created_at: datetime
    confirmed_at: datetime | None


def _view(row: Any) -> SubscriptionView:
    return SubscriptionView(
        row["id"],
        row["email"],
        row["name"],
        SubscriptionStatus(row["status"]),
        row["created_at"],
        row["confirmed_at"],
    )


async def get_by_email(conn: Connection, email: str) -> SubscriptionView | None:
    row = await conn.fetchrow(Q["get_by_email"], email)
    return _view(row) if row is not None else None


async def delete_expired_tokens(conn: Connection, older_than_seconds: float) -> int:
    status = await conn.execute(Q["delete_expired_tokens"], older_than_seconds)
    return int(status.split()[-1])


async def get_by_id(conn: Connection, subscriber_id: uuid.UUID) -> SubscriptionView | None:
    row = await conn.fetchrow(Q["get_by_id"], subscriber_id)
    return _view(row) if row is not None else None


async def rename(conn: Connection, subscriber_id: uuid.UUID, name: str) -> SubscriptionView | None:
    row = await conn.fetchrow(Q["rename"], subscriber_id, name)
    return _view(row) if row is not None else None


async def list_page(
    conn: Connection, where: ListFilter, after: Cursor, limit: int, *, forward: bool = True
) -> list[SubscriptionView]:
    """Up to ``limit`` subscribers matching ``where`` after ``after`` in its sort order
    (``forward=False``: before it, nearest first). Call inside a transaction."""
    newest = (where.sort is Sort.NEWEST) == forward
    status = where.tab.status
    await conn.execute(Q["custom_plans"])
    if where.contains is not None:
        return await _contains(conn, where.contains, status, after, limit, newest=newest)
    rows = await conn.fetch(
        Q["list_newest"] if newest else Q["list_oldest"],
        after.created_at,
        after.id,
        status.value if status else None,
        where.prefix_pattern,
        limit,
    )
    return [_view(row) for row in rows]


# How many of the newest rows a "contains" search walks before it asks the trigram index.
RECENT_WINDOW = 10_000


async def _contains(
    conn: Connection,
    text: str,
    status: SubscriptionStatus | None,
    after: Cursor,
    limit: int,
    *,
    newest: bool,
) -> list[SubscriptionView]:
    """A page of a substring search in two tries: the next :data:`RECENT_WINDOW` rows of
    the list (a common text fills its page there), else the trigram index (a rare one)."""
    args = (after.created_at, after.id, status.value if status else None, text, limit)
    recent = Q["contains_newest_recent"] if newest else Q["contains_oldest_recent"]
    rows = await conn.fetch(recent, *args, RECENT_WINDOW)
    if len(rows) < limit:
        rows = await conn.fetch(Q["contains_newest"] if newest else Q["contains_oldest"], *args)
    return [_view(row) for row in rows]


async def status_counts(conn: Connection) -> dict[SubscriptionStatus, int]:
    rows = await conn.fetch(Q["status_counts"])
    found = {SubscriptionStatus(row["status"]): int(row["n"]) for row in rows}
    return {status: found.get(status, 0) for status in SubscriptionStatus}


@dataclass(frozen=True, slots=True)
class TimelineSubscriber:
    view: SubscriptionView
    updated_at: datetime
    unsubscribed_at: datetime | None


async def get_for_timeline(conn: Connection, subscriber_id: uuid.UUID) -> TimelineSubscriber | None:
    row = await conn.fetchrow(Q["get_for_timeline"], subscriber_id)
    if row is None:
        return None
    return TimelineSubscriber(_view(row), row["updated_at"], row["unsubscribed_at"])


async def deliveries_of(
    conn: Connection, subscriber_id: uuid.UUID, before: Cursor, limit: int
) -> list[tuple[int, TimelineEvent]]:
    """(delivery id, event) for one subscriber's deliveries, newest first."""
    rows = await conn.fetch(
        Q["subscriber_deliveries"], subscriber_id, before.created_at, before.id, limit
    )
    return [
        (
            row["id"],
            TimelineEvent(
                at=row["created_at"],
                kind=row["kind"],
                status=row["status"],
                title=row["issue_title"] or "",
                issue_id=row["issue_id"],
                attempts=row["attempts"],
                detail=row["last_error"] or "",
                sent_at=row["sent_at"],
            ),
        )
        for row in rows
    ]


async def reports_of(
    conn: Connection,
    subscriber_id: uuid.UUID,
    *,
    older_than: datetime,
    newer_than: datetime,
    limit: int,
) -> list[TimelineEvent]:
    """What the providers reported about the subscriber's emails in a timeline window."""
    rows = await conn.fetch(Q["subscriber_reports"], subscriber_id, older_than, newer_than, limit)
    return [
        TimelineEvent(
            at=row["occurred_at"],
            kind="report",
            status=row["kind"],
            title=row["issue_title"] or "",
            issue_id=row["issue_id"],
            detail=row["detail"],
            provider=row["provider"],
            suppressed=row["suppressed"],
        )
        for row in rows
    ]


async def lock_resendable(
    conn: Connection, ids: list[uuid.UUID], *, window_seconds: float, per_window: int
) -> list[Subscription]:
    rows = await conn.fetch(Q["lock_resendable"], ids, window_seconds, per_window)
    return [
        Subscription(row["id"], row["email"], row["name"], SubscriptionStatus.PENDING)
        for row in rows
    ]


async def unsubscribe_many(conn: Connection, ids: list[uuid.UUID]) -> int:
    changed: int = await conn.fetchval(Q["unsubscribe_many"], ids)
    return changed


async def delete_many(conn: Connection, ids: list[uuid.UUID], source: str = "admin") -> int:
    """Erase the subscribers ``ids`` (``queries.sql``: deleted, their addresses suppressed
    as erased, their delivery history without the address); how many went. ``source``:
    who erased them, kept on the suppression rows."""
    deleted: int = await conn.fetchval(Q["delete_many"], ids, source)
    return deleted


@dataclass(frozen=True, slots=True)
class DailyFigures:
    """One UTC day of ``subscriber_daily`` (migration 0011), its slots summed."""

    day: date
    subscribed: int
    confirmed: int
    unsubscribed: int
    deleted: int
    confirmed_net: int
    pending_net: int


async def daily_figures(conn: Connection, after: date) -> list[DailyFigures]:
    """Every recorded day after ``after`` (including any after today), oldest first."""
    rows = await conn.fetch(Q["daily_figures"], after)
    return [
        DailyFigures(
            row["day"],
            int(row["subscribed"]),
            int(row["confirmed"]),
            int(row["unsubscribed"]),
            int(row["deleted"]),
            int(row["confirmed_net"]),
            int(row["pending_net"]),
        )
        for row in rows
    ]


async def backfill_subscriber(conn: Connection, subscriber_id: uuid.UUID) -> None:
    await conn.execute(Q["backfill_subscriber"], subscriber_id)
