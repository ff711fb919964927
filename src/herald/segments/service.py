"""Saved segments (create, change, delete, preview: how many match and who) and the
attributes of one subscriber (read, merge a change)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from herald.core.db import Connection, Database
from herald.core.errors import Conflict, NotFound, ValidationError
from herald.segments import attributes, repository
from herald.segments.domain import All, AnyOf, Filter, InList, Not, StatusIn, parse_filter
from herald.segments.repository import Member, Segment
from herald.segments.saved import SegmentDraft, to_json

# A count or page over a million subscribers that a filter makes slow is cut off here.
TIMEOUT = "5s"
SAMPLE_SIZE = 10
MAX_SEGMENTS_SHOWN = 500
_START = (datetime(1, 1, 2, tzinfo=UTC), uuid.UUID(int=0))
_NEWEST = (datetime(9999, 12, 30, tzinfo=UTC), uuid.UUID(int=(1 << 128) - 1))
TOO_SLOW = (
    "Counting took longer than 5 seconds and was stopped: the filter is saved; narrow it "
    "(a list, a status, a sign-up date) to see its count."
)


@dataclass(frozen=True, slots=True)
class Preview:
    """What a filter selects now: ``count`` (None when counting was too slow) and a
    sample of the newest matching subscribers (None when that was too slow)."""

    count: int | None
    sample: list[Member] | None


def _lists_of(node: Filter) -> set[str]:
    match node:
        case InList(slug, _):
            return {slug}
        case Not(part):
            return _lists_of(part)
        case All(parts) | AnyOf(parts):
            return set().union(*(_lists_of(p) for p in parts))
    return set()


@dataclass(frozen=True)
class SegmentService:
    db: Database

    async def page(
        self, after: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> tuple[list[Segment], bool]:
        """Segments oldest first after ``after``; and whether more follow."""
        async with self.db.connection() as conn:
            rows = await repository.list_segments(conn, after or _START, limit + 1)
        return rows[:limit], len(rows) > limit

    async def all(self) -> list[Segment]:
        segments, _ = await self.page(None, MAX_SEGMENTS_SHOWN)
        return sorted(segments, key=lambda s: s.name.casefold())

    async def get(self, segment_id: uuid.UUID) -> Segment:
        async with self.db.connection() as conn:
            found = await repository.get(conn, segment_id)
        if found is None:
            raise NotFound("no such segment")
        return found

    async def create(self, *, name: object, filter: object, by: uuid.UUID | None) -> Segment:
        draft = SegmentDraft.parse(name=name, filter=filter)
        async with self.db.transaction() as conn:
            await self._check_lists(conn, draft.filter)
            return await repository.insert(conn, draft, by)

    async def update(
        self, segment_id: uuid.UUID, *, name: object = None, filter: object = None
    ) -> Segment:
        """Rename and/or change the filter; None keeps what is stored."""
        async with self.db.transaction() as conn:
            current = await repository.get(conn, segment_id)
            if current is None:
                raise NotFound("no such segment")
            draft = SegmentDraft.parse(
                name=current.name if name is None else name,
                filter=to_json(current.filter) if filter is None else filter,
            )
            await self._check_lists(conn, draft.filter)
            found = await repository.update(conn, segment_id, draft)
        if found is None:
            raise NotFound("no such segment")
        return found

    async def delete(self, segment_id: uuid.UUID) -> None:
        async with self.db.transaction() as conn:
            unsent, total = await repository.issues_using(conn, segment_id)
            if total:
                raise Conflict(
                    f"This segment is the target of {total} issue{'s' if total != 1 else ''}"
                    f" ({unsent} not sent yet): it cannot be deleted."
                )
            if not await repository.delete(conn, segment_id):
                raise NotFound("no such segment")

    async def preview_json(self, raw: object) -> Preview:
        """:meth:`preview` of a filter's JSON (validated)."""
        return await self.preview(parse_filter(raw))

    async def preview(self, node: Filter) -> Preview:
        """How many subscribers ``node`` selects, and the newest of them."""
        async with self.db.transaction() as conn:
            count = await repository.count(conn, node, TIMEOUT)
            sample = await repository.members(conn, node, _NEWEST, SAMPLE_SIZE, TIMEOUT)
        return Preview(count, sample)

    async def members(
        self,
        segment_id: uuid.UUID,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
        *,
        status: str | None = None,
    ) -> tuple[list[Member], bool]:
        """The segment's subscribers (with ``status``, if given), newest first after
        ``after``; and whether more follow."""
        segment = await self.get(segment_id)
        where = segment.filter if status is None else All((segment.filter, StatusIn((status,))))
        return await self.matching(where, after, limit)

    async def matching(
        self, where: Filter, after: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> tuple[list[Member], bool]:
        async with self.db.transaction() as conn:
            rows = await repository.members(conn, where, after or _NEWEST, limit + 1, TIMEOUT)
        if rows is None:
            raise ValidationError(
                "finding this segment's subscribers took longer than 5 seconds: narrow it",
                field="segment",
            )
        return rows[:limit], len(rows) > limit

    async def list_choices(self) -> list[tuple[str, str]]:
        async with self.db.connection() as conn:
            return await repository.list_choices(conn)

    async def _check_lists(self, conn: Connection, node: Filter) -> None:
        slugs = sorted(_lists_of(node))
        if not slugs:
            return
        unknown = sorted(set(slugs) - await repository.known_lists(conn, slugs))
        if unknown:
            raise ValidationError(f"filter: there is no list {unknown[0]!r}", field="filter")


@dataclass(frozen=True)
class Attributes:
    """One subscriber with their attributes; changes merged at the top level."""

    db: Database

    async def member(self, subscriber_id: uuid.UUID) -> Member:
        async with self.db.connection() as conn:
            found = await repository.get_member(conn, subscriber_id)
        if found is None:
            raise NotFound("no such subscriber")
        return found

    async def change(self, subscriber_id: uuid.UUID, change: object) -> Member:
        """Merge ``change`` (``null`` deletes a key) into the stored attributes."""
        checked = attributes.parse_change(change)
        async with self.db.transaction() as conn:
            current = await repository.lock_attributes(conn, subscriber_id)
            return await repository.set_attributes(
                conn, subscriber_id, attributes.merge(current, checked)
            )

    async def replace(self, subscriber_id: uuid.UUID, whole: object) -> Member:
        """Store ``whole`` as the attributes (the admin page's editor)."""
        checked = attributes.parse_attributes(whole)
        async with self.db.transaction() as conn:
            await repository.lock_attributes(conn, subscriber_id)
            return await repository.set_attributes(conn, subscriber_id, checked)
