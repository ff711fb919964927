"""Managing the suppression list: add (an operator, the API), remove (an operator's
decision), and the pages that list it. The invariant that makes the fan-out honour the
list is in the package docstring; its statement is ``queries.sql``'s ``add``."""

from __future__ import annotations

from dataclasses import dataclass

from herald.core import live
from herald.core.db import Connection, Database
from herald.core.errors import Conflict, NotFound, ValidationError
from herald.core.telemetry import get_logger
from herald.subscriptions.domain import SubscriberEmail
from herald.suppressions import repository
from herald.suppressions.domain import Cursor, Filter, Reason, Suppression, source_text

log = get_logger("herald.suppressions")

PAGE_SIZE = 50
# A search walks this many newest rows before it asks the trigram index (queries.sql).
RECENT_WALK = 2000
ERASED_REFUSAL = (
    "this address was erased at the reader's request: its suppression cannot be lifted "
    "(Herald no longer knows the address, and the reader asked to be forgotten)"
)


@dataclass(frozen=True, slots=True)
class SuppressionPage:
    where: Filter
    rows: list[Suppression]
    counts: dict[Reason, int]
    older: Cursor | None  # the next page's cursor; None at the end

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def whole_address(query: str) -> str | None:
    """The search text as a normalised address when it is a whole one, else None."""
    if "@" not in query:
        return None
    try:
        return SubscriberEmail.parse(query).value
    except ValidationError:
        return None


async def rows_for(conn: Connection, where: Filter, after: Cursor, limit: int) -> list[Suppression]:
    """A search for a whole address finds its row by key (kept or erased: an erased row has
    no address to contain the text); any other text is looked for in the kept addresses."""
    if not where.query:
        return await repository.page(conn, where, after, limit)
    address = whole_address(where.query)
    if address is not None:
        return await repository.by_address(conn, Filter(where.reason, address), after, limit)
    return await repository.containing(conn, where, after, limit, walk=RECENT_WALK)


@dataclass(frozen=True)
class SuppressionList:
    db: Database

    async def add(
        self, raw_email: str, reason: Reason = Reason.MANUAL, *, source: str = "admin"
    ) -> tuple[Suppression, bool]:
        """Suppress an address (and unsubscribe its subscription, at once); the row and
        whether it is new. Idempotent: an address already suppressed keeps its row."""
        email = SubscriberEmail.parse(raw_email).value
        async with self.db.transaction() as conn:
            added = await repository.add(conn, email, reason, source_text(source))
            if added.unsubscribed is not None:
                event = live.event("subscriber.unsubscribed", subscriber_id=added.unsubscribed)
                await live.notify(conn, event)
        if added.created:
            log.info("suppression added", reason=added.suppression.reason.value, source=source)
        return added.suppression, added.created

    async def remove(self, raw_email: str) -> Suppression:
        """Lift an address's suppression: it may be mailed again once it signs up again
        (nobody is re-subscribed). ``NotFound`` when it is not suppressed; ``Conflict`` for
        an erasure."""
        email = SubscriberEmail.parse(raw_email).value
        async with self.db.transaction() as conn:
            removal = await repository.remove(conn, email)
        if removal.before is None:
            raise NotFound("this address is not on the suppression list")
        if not removal.removed:
            raise Conflict(ERASED_REFUSAL)
        log.info("suppression removed", reason=removal.before.reason.value)
        return removal.before

    async def page(self, where: Filter, *, after: str = "") -> SuppressionPage:
        """One page of :data:`PAGE_SIZE`, newest first, after ``after`` (or from the top)."""
        cursor = Cursor.parse(after) if after else Cursor.start()
        async with self.db.transaction() as conn:
            rows = await rows_for(conn, where, cursor, PAGE_SIZE + 1)
            counts = await repository.counts(conn)
        rows, more = rows[:PAGE_SIZE], len(rows) > PAGE_SIZE
        older = Cursor(rows[-1].created_at, rows[-1].key) if more else None
        return SuppressionPage(where, rows, counts, older)

    async def find(
        self, where: Filter, *, after: Cursor | None, limit: int
    ) -> tuple[list[Suppression], bool]:
        """Up to ``limit`` rows after ``after`` (the JSON API's list); whether more follow."""
        async with self.db.connection() as conn:
            rows = await rows_for(conn, where, after or Cursor.start(), limit + 1)
        return rows[:limit], len(rows) > limit
