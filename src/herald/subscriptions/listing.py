"""The admin's subscriber list as values: filters, keyset cursors, the timeline.

Pure (no web framework, no database): the repository turns a :class:`ListFilter` and a
:class:`Cursor` into statement parameters, the service builds a :class:`Timeline`.

Paging is by keyset: a page ends at a row ``(created_at, id)`` and the next starts
strictly after it in the sort order, so a page deep in a million rows costs what the
first does (``OFFSET`` reads and drops every row before it), and rows inserted or
deleted meanwhile never make a row appear twice or go missing between pages.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TypeVar

from herald.core.errors import ValidationError
from herald.subscriptions.domain import SubscriptionStatus

MAX_QUERY_LENGTH = 320
# "Contains" needs three characters: the trigram index holds 3-character substrings.
# Shorter texts match the start of the email or the name instead.
MIN_CONTAINS_LENGTH = 3


class Sort(StrEnum):
    NEWEST = "newest"
    OLDEST = "oldest"


class Match(StrEnum):
    CONTAINS = "contains"
    PREFIX = "prefix"
    # Contains at any length (the JSON API's ``search``): a text under three characters
    # is looked for in the list's rows instead of the trigram index (slower, but what the
    # API promises: the subscribers whose email or name contains it).
    SUBSTRING = "substring"


class Tab(StrEnum):
    """The status tabs; ``ALL`` filters nothing."""

    ALL = "all"
    CONFIRMED = "confirmed"
    PENDING = "pending_confirmation"
    UNSUBSCRIBED = "unsubscribed"

    @property
    def status(self) -> SubscriptionStatus | None:
        return None if self is Tab.ALL else SubscriptionStatus(self.value)


E = TypeVar("E", bound=StrEnum)


def _choice(kind: type[E], raw: str, default: E, name: str) -> E:
    if not raw:
        return default
    try:
        return kind(raw)
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise ValidationError(f"{name} must be one of: {allowed}", field=name) from None


@dataclass(frozen=True, slots=True)
class ListFilter:
    """Which subscribers a list page (or a bulk action over "everyone matching") covers."""

    tab: Tab = Tab.ALL
    query: str = ""
    match: Match = Match.CONTAINS
    sort: Sort = Sort.NEWEST

    @classmethod
    def parse(cls, *, status: str = "", q: str = "", match: str = "", sort: str = "") -> ListFilter:
        text = q.strip()
        if len(text) > MAX_QUERY_LENGTH:
            raise ValidationError(f"a search is at most {MAX_QUERY_LENGTH} characters", field="q")
        if "\x00" in text:  # Postgres cannot take it as text: a 500 otherwise
            raise ValidationError("a search cannot hold a NUL character", field="q")
        return cls(
            _choice(Tab, status, Tab.ALL, "status"),
            text,
            _choice(Match, match, Match.CONTAINS, "match"),
            _choice(Sort, sort, Sort.NEWEST, "sort"),
        )

    @property
    def contains(self) -> str | None:
        """The substring to look for, or None."""
        if not self.query:
            return None
        if self.match is Match.SUBSTRING:
            return self.query
        if self.match is Match.CONTAINS and len(self.query) >= MIN_CONTAINS_LENGTH:
            return self.query
        return None

    @property
    def prefix_pattern(self) -> str | None:
        """A ``LIKE`` pattern for "starts with" (also for contains-searches too short for
        the trigram index), with ``%``, ``_`` and ``\\`` in the text taken literally."""
        if not self.query or self.contains is not None:
            return None
        escaped = self.query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return escaped + "%"

    def params(self) -> dict[str, str]:
        """The query-string parameters that reproduce this filter (defaults left out)."""
        out: dict[str, str] = {}
        if self.tab is not Tab.ALL:
            out["status"] = self.tab.value
        if self.query:
            out["q"] = self.query
        if self.match is not Match.CONTAINS:
            out["match"] = self.match.value
        if self.sort is not Sort.NEWEST:
            out["sort"] = self.sort.value
        return out


_FAR_PAST = datetime(1, 1, 2, tzinfo=UTC)
_FAR_FUTURE = datetime(9999, 12, 30, tzinfo=UTC)
_MAX_BIGINT = (1 << 63) - 1


@dataclass(frozen=True, slots=True)
class Cursor:
    """A row's place in the order: ``(created_at, id)``; written ``<iso time>~<id>``."""

    created_at: datetime
    id: uuid.UUID | int

    @classmethod
    def parse(cls, raw: str, *, integer_id: bool = False) -> Cursor:
        when, _, ident = raw.partition("~")
        try:
            cursor = cls(
                datetime.fromisoformat(when), int(ident) if integer_id else uuid.UUID(ident)
            )
        except ValueError:
            cursor = None
        if (
            cursor is None
            or cursor.created_at.tzinfo is None
            or (isinstance(cursor.id, int) and not 0 <= cursor.id <= _MAX_BIGINT)
        ):
            raise ValidationError("this page link is not valid", field="after")
        return cursor

    @classmethod
    def start(cls, sort: Sort, *, integer_id: bool = False) -> Cursor:
        """Before the first row of ``sort``: newest first starts after the far future."""
        if sort is Sort.NEWEST:
            return cls(_FAR_FUTURE, _MAX_BIGINT if integer_id else uuid.UUID(int=(1 << 128) - 1))
        return cls(_FAR_PAST, 0 if integer_id else uuid.UUID(int=0))

    def __str__(self) -> str:
        return f"{self.created_at.isoformat()}~{self.id}"


_UUID_MIN = uuid.UUID(int=0)
_UUID_MAX = uuid.UUID(int=(1 << 128) - 1)


@dataclass(frozen=True, slots=True)
class Window:
    """Sign-up times strictly after ``after`` and strictly before ``before`` (None: open).

    Applied to a keyset walk without a statement of its own: the start cursor is moved to
    the window's near edge, and the rows are cut at its far edge (they come in order, so
    the first row past it ends the list)."""

    after: datetime | None = None
    before: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("after", "before"):
            when = getattr(self, name)
            if when is not None and when.tzinfo is None:
                raise ValidationError(
                    f"created_{name} needs a time zone (2026-01-31T12:00:00Z)",
                    field=f"created_{name}",
                )

    def start(self, cursor: Cursor, sort: Sort) -> Cursor:
        """``cursor``, or the window's near edge if that comes later in ``sort``."""
        if sort is Sort.NEWEST and self.before is not None:
            edge = Cursor(self.before, _UUID_MIN)  # rows strictly before it
            return min(cursor, edge, key=_order_key)
        if sort is Sort.OLDEST and self.after is not None:
            edge = Cursor(self.after, _UUID_MAX)  # rows strictly after it
            return max(cursor, edge, key=_order_key)
        return cursor

    def admits(self, created_at: datetime) -> bool:
        return (self.after is None or created_at > self.after) and (
            self.before is None or created_at < self.before
        )


def _order_key(cursor: Cursor) -> tuple[datetime, int]:
    ident = cursor.id.int if isinstance(cursor.id, uuid.UUID) else cursor.id
    return cursor.created_at, ident


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    """One line of a subscriber's timeline. ``kind``: subscribed, confirmed,
    unsubscribed, confirmation or issue (an email; other kinds of email too), or report
    (what a provider reported about an email: ``status`` is the event's kind)."""

    at: datetime
    kind: str
    status: str = ""
    title: str = ""
    issue_id: uuid.UUID | None = None
    attempts: int = 0
    detail: str = ""
    sent_at: datetime | None = None
    provider: str = ""
    suppressed: bool = False  # a report that put the address on the suppression list


@dataclass(frozen=True, slots=True)
class Timeline:
    events: list[TimelineEvent] = field(default_factory=list)
    # Where the next (older) page starts; None on the last page.
    older: Cursor | None = None


def merge_timeline(
    milestones: list[TimelineEvent],
    deliveries: list[TimelineEvent],
    *,
    newer_than: datetime | None,
    older_than: datetime | None,
) -> list[TimelineEvent]:
    """Deliveries of one page with the milestones (subscribed, confirmed, unsubscribed)
    that fall in the page's window, newest first. ``newer_than``: the page's oldest
    delivery when older pages follow; ``older_than``: where the page starts."""
    shown = [
        m
        for m in milestones
        if (newer_than is None or m.at >= newer_than) and (older_than is None or m.at < older_than)
    ]
    return sorted([*shown, *deliveries], key=lambda e: e.at, reverse=True)
