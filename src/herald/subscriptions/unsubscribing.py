"""Leaving: the unsubscribe link of every issue email (RFC 8058 one-click, per list) and
"unsubscribe from all" (the preference centre's, and one-click links without an issue).

* ``POST /unsubscribe/one-click?token=T&issue=I`` unsubscribes the reader from the lists
  issue ``I`` went to (its ``issue_lists``; the default list for an issue without any)
  and nothing else; ``&list=L`` (a list's welcome email) from list ``L`` alone. Without
  either (emails sent before lists existed) — or with one that is garbled or unknown,
  which is logged: a 400 would break one-click for a reader — it unsubscribes from
  everything.
* Everything: the address is ``unsubscribed`` (every membership with it, by 0018's
  trigger) and suppressed with reason ``unsubscribed``, keeping the address, so that a
  re-import never brings the reader back; their own double opt-in sign-up lifts it.

The token is the credential (:mod:`.unsubscribe`): 400 for one that does not verify.
Every call is idempotent.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from herald.core import live, sql
from herald.core.config import Settings
from herald.core.db import Connection, Database
from herald.core.errors import NotFound, ValidationError
from herald.core.telemetry import get_logger
from herald.subscriptions import repository
from herald.subscriptions.unsubscribe import parse_token, preferences_url

log = get_logger("herald.subscriptions")
Q = sql.load("herald.subscriptions", "unsubscribe.sql")

ONE_CLICK = "one-click"
INVALID_LINK = "this unsubscribe link is not valid"


@dataclass(frozen=True, slots=True)
class Leaving:
    """What the unsubscribe page shows before the reader confirms."""

    email: str
    lists: list[str]  # the lists the link leaves; empty: everything
    preferences_url: str


def issue_of(raw: str, what: str = "issue") -> uuid.UUID | None:
    """The ``issue`` (or ``list``) parameter as an id; None (logged) when it is garbled."""
    if not raw:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        log.warning(f"unsubscribe link with a garbled {what}: unsubscribing from everything")
        return None


def subscriber_of(settings: Settings, token: str) -> uuid.UUID:
    subscriber_id = parse_token(settings, token)
    if subscriber_id is None:
        raise ValidationError(INVALID_LINK, field="token")
    return subscriber_id


async def unsubscribe_all(conn: Connection, subscriber_id: uuid.UUID, source: str) -> bool | None:
    """In ``conn``'s transaction: unsubscribe from everything and suppress the address;
    whether this changed the address's status (an event is sent when it did), None when
    there is no such subscriber."""
    row = await conn.fetchrow(Q["unsubscribe_all"], subscriber_id, source)
    assert row is not None  # one row always
    if not row["known"]:
        return None
    if row["changed"]:
        gone = live.event("subscriber.unsubscribed", subscriber_id=subscriber_id)
        await live.notify(conn, gone)
    return bool(row["changed"])


@dataclass(frozen=True, slots=True)
class Left:
    everything: bool  # from everything, not just an issue's lists


@dataclass(frozen=True)
class Unsubscribing:
    db: Database
    settings: Settings

    async def leaving(self, token: str, issue: str = "", list_: str = "") -> Leaving:
        """The page of the link: who, and which lists (400 for a bad token, 404 for a
        reader who is gone)."""
        subscriber_id = subscriber_of(self.settings, token)
        issue_id, list_id = issue_of(issue), issue_of(list_, "list")
        async with self.db.connection() as conn:
            found = await repository.get_by_id(conn, subscriber_id)
            if found is None:
                raise NotFound("this subscription no longer exists")
            if list_id is not None:
                names = [row["name"] for row in await conn.fetch(Q["list_name"], list_id)]
            elif issue_id is not None:
                names = [row["name"] for row in await conn.fetch(Q["issue_list_names"], issue_id)]
            else:
                names = []
        return Leaving(found.email, names, preferences_url(self.settings, token))

    async def unsubscribe(
        self, token: str, issue: str = "", list_: str = "", *, source: str = ONE_CLICK
    ) -> Left:
        """Unsubscribe at once (idempotent): from the list, the issue's lists, or from
        everything."""
        subscriber_id = subscriber_of(self.settings, token)
        issue_id, list_id = issue_of(issue), issue_of(list_, "list")
        async with self.db.transaction() as conn:  # the change and its event commit together
            if list_id is not None:
                row = await conn.fetchrow(Q["unsubscribe_list"], subscriber_id, list_id, source)
                assert row is not None  # one row always
                if row["list_known"] or not row["known"]:
                    if row["changed"]:
                        log.info("unsubscribed from a list", list_id=str(list_id))
                    return Left(everything=False)
                log.warning("unsubscribe link of an unknown list: unsubscribing from everything")
            elif issue_id is not None:
                row = await conn.fetchrow(Q["unsubscribe_lists"], subscriber_id, issue_id, source)
                assert row is not None  # one row always
                if row["issue_known"] or not row["known"]:
                    if row["changed"]:
                        log.info("unsubscribed from an issue's lists", lists=row["changed"])
                    return Left(everything=False)
                log.warning("unsubscribe link of an unknown issue: unsubscribing from everything")
            changed = await unsubscribe_all(conn, subscriber_id, source)
        if changed:
            log.info("unsubscribed", subscriber_id=str(subscriber_id))
        return Left(everything=True)
