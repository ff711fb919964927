"""The preference centre's use cases: read the reader's page, save their lists,
unsubscribe from everything, download their data, erase them. Each starts from the signed
token (400 when it does not verify); a reader who is gone is a 404, except for erasure,
which is done already then."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from herald.core import live
from herald.core.config import Settings
from herald.core.db import Connection, Database
from herald.core.errors import Conflict, NotFound, ValidationError
from herald.core.telemetry import get_logger
from herald.engagement import repository as tracking
from herald.preferences import repository
from herald.preferences.repository import ListChoice, Reader, Saved
from herald.subscriptions import repository as subscriptions
from herald.subscriptions.domain import SuppressionReason
from herald.subscriptions.signup import Consent
from herald.subscriptions.unsubscribing import subscriber_of, unsubscribe_all
from herald.subscriptions.welcoming import NO_WELCOMES, Welcomer

log = get_logger("herald.preferences")

SOURCE = "preferences"
HISTORY_ROWS = 1000
RECEIVING = frozenset({"confirmed", "pending_confirmation"})  # shown ticked
GONE = "this subscription no longer exists: there is nothing left to manage"
SUPPRESSED = (
    "this address is on the newsletter's suppression list ({reason}): it cannot be "
    "subscribed from here. Please contact the newsletter's operator."
)


@dataclass(frozen=True, slots=True)
class Preferences:
    reader: Reader
    lists: list[ListChoice]  # each with the reader's effective membership status
    suppressed: str | None  # the reason, when the address is suppressed
    tracked: bool = True  # False: the reader turned engagement tracking off

    @property
    def unsubscribed(self) -> bool:
        return self.reader.status == "unsubscribed"

    def receives(self, choice: ListChoice) -> bool:
        return not self.unsubscribed and choice.status in RECEIVING


def _effective(reader: Reader, lists: list[ListChoice]) -> list[ListChoice]:
    """A subscriber from before lists, not yet backfilled, has no membership: they are in
    the default list with their address's status (migration 0018)."""
    if any(choice.status is not None for choice in lists):
        return lists
    return [replace(c, status=reader.status) if c.slug == "default" else c for c in lists]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True)
class PreferenceCentre:
    """``welcomer``: queues the welcome email of a list joined here (none by default)."""

    db: Database
    settings: Settings
    welcomer: Welcomer = NO_WELCOMES

    async def view(self, token: str) -> Preferences:
        subscriber_id = subscriber_of(self.settings, token)
        async with self.db.transaction() as conn:
            reader, lists, suppressed = await _read(conn, subscriber_id)
            tracked = not await tracking.opted_out(conn, [subscriber_id])
        suppression = suppressed[0] if suppressed else None
        return Preferences(reader, _effective(reader, lists), suppression, tracked)

    async def email(self, token: str) -> str:
        """The reader's address (the erasure's confirmation step)."""
        subscriber_id = subscriber_of(self.settings, token)
        async with self.db.connection() as conn:
            reader = await repository.reader(conn, subscriber_id)
        if reader is None:
            raise NotFound(GONE)
        return reader.email

    async def save(self, token: str, slugs: Iterable[str], *, ip: str, user_agent: str) -> Saved:
        """Be in exactly the lists ``slugs`` among those the page shows: join the others
        (confirmed at once) and leave the rest."""
        subscriber_id = subscriber_of(self.settings, token)
        chosen = set(slugs)
        consent = Consent.of_request("preferences", ip=ip, user_agent=user_agent)
        async with self.db.transaction() as conn:
            reader = await repository.reader(conn, subscriber_id, lock=True)
            if reader is None:
                raise NotFound(GONE)
            shown = _effective(reader, await repository.lists(conn, subscriber_id))
            unknown = chosen - {choice.slug for choice in shown}
            if unknown:
                raise ValidationError(
                    f"list {sorted(unknown)[0][:60]!r} is not one you can choose here",
                    field="list",
                )
            confirm_address = bool(chosen) and reader.status != "confirmed"
            if confirm_address:
                suppressed = await repository.suppression(conn, reader.email)
                if suppressed is not None and SuppressionReason(suppressed[0]).blocks_sign_up:
                    raise Conflict(SUPPRESSED.format(reason=suppressed[0].replace("_", " ")))
            join = [c.id for c in shown if c.slug in chosen and c.status != "confirmed"]
            # Left: the lists they are in (a list they never joined gets no row).
            leave = [c.id for c in shown if c.slug not in chosen and c.status in RECEIVING]
            saved = await repository.save(
                conn,
                subscriber_id,
                join,
                leave,
                ip=consent.ip,
                user_agent=consent.user_agent,
                confirm_address=confirm_address,
            )
            if saved.confirmed:
                back = live.event("subscriber.confirmed", subscriber_id=subscriber_id)
                await live.notify(conn, back)
            if saved.joined:
                await self.welcomer.welcome(conn, subscriber_id)
        log.info("preferences saved", joined=saved.joined, left=saved.left)
        return saved

    async def set_tracking(self, token: str, *, on: bool) -> None:
        """Let issues that track opens and clicks track this reader, or not: off, their
        copies carry no pixel and plain links (engagement/). Nothing else changes."""
        subscriber_id = subscriber_of(self.settings, token)
        async with self.db.transaction() as conn:
            if await repository.reader(conn, subscriber_id, lock=True) is None:
                raise NotFound(GONE)
            await tracking.set_opt_out(conn, subscriber_id, out=not on)
        log.info("engagement tracking set", on=on)

    async def unsubscribe_all(self, token: str) -> bool:
        subscriber_id = subscriber_of(self.settings, token)
        async with self.db.transaction() as conn:
            changed = await unsubscribe_all(conn, subscriber_id, SOURCE)
        if changed is None:
            raise NotFound(GONE)
        return changed

    async def erase(self, token: str) -> bool:
        """Erase the reader (idempotent): whether this call did it."""
        subscriber_id = subscriber_of(self.settings, token)
        async with self.db.transaction() as conn:
            erased = await subscriptions.delete_many(conn, [subscriber_id], SOURCE) > 0
            if erased:
                await live.notify(
                    conn, live.event("subscriber.deleted", subscriber_id=subscriber_id)
                )
        if erased:
            log.info("subscriber erased", via=SOURCE)
        return erased

    async def data(self, token: str) -> dict[str, Any]:
        """Everything Herald holds about the reader, as JSON values."""
        subscriber_id = subscriber_of(self.settings, token)
        async with self.db.transaction() as conn:
            reader, lists, suppressed = await _read(conn, subscriber_id)
            counts = await repository.delivery_counts(conn, subscriber_id)
            recent = await repository.recent_deliveries(conn, subscriber_id, HISTORY_ROWS)
            tracked = not await tracking.opted_out(conn, [subscriber_id])
            engagement = await tracking.reader_engagement(conn, subscriber_id, HISTORY_ROWS)
        return {
            "exported_at": datetime.now(UTC).isoformat(),
            "subscriber": {
                "id": str(reader.id),
                "email": reader.email,
                "name": reader.name,
                "status": reader.status,
                "attributes": reader.attributes,
                "created_at": _iso(reader.created_at),
                "confirmed_at": _iso(reader.confirmed_at),
                "unsubscribed_at": _iso(reader.unsubscribed_at),
            },
            "lists": [_membership(choice) for choice in lists if choice.status is not None],
            "engagement_tracking": tracked,
            "engagement": [
                {
                    "issue": row["title"],
                    "sent_at": _iso(row["sent_at"]),
                    "opened": row["opened"],
                    "clicks": row["clicks"],
                }
                for row in engagement
            ],
            "suppression": (
                {"reason": suppressed[0], "since": _iso(suppressed[1])} if suppressed else None
            ),
            "deliveries": {
                "counts": [{"kind": k, "status": s, "count": n} for k, s, n in counts],
                "recent": [_delivery(row) for row in recent],
                "recent_limit": HISTORY_ROWS,
            },
        }


async def _read(
    conn: Connection, subscriber_id: uuid.UUID
) -> tuple[Reader, list[ListChoice], tuple[str, datetime] | None]:
    """The reader, their lists (as stored) and their suppression; 404 when they are gone."""
    reader = await repository.reader(conn, subscriber_id)
    if reader is None:
        raise NotFound(GONE)
    lists = await repository.lists(conn, subscriber_id)
    return reader, lists, await repository.suppression(conn, reader.email)


def _membership(choice: ListChoice) -> dict[str, Any]:
    return {
        "list": choice.slug,
        "name": choice.name,
        "status": choice.status,
        "consent": {
            "source": choice.source,
            "ip": choice.consent_ip,
            "user_agent": choice.consent_user_agent,
            "joined_at": _iso(choice.joined_at),
            "confirmed_at": _iso(choice.confirmed_at),
            "unsubscribed_at": _iso(choice.unsubscribed_at),
        },
    }


def _delivery(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": row["kind"],
        "issue": row["issue_title"],
        "status": row["status"],
        "created_at": _iso(row["created_at"]),
        "sent_at": _iso(row["sent_at"]),
    }
