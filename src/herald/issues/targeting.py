"""Who an issue goes to: choosing its lists and segment, checking them, and the segment's
condition for the fan-out and the recipient count.

An issue targets one or more lists (``issue_lists``; none: the default list, which is how
issues and API clients of the previous release behave) and optionally one saved segment;
its readers are the subscribers whose subscription is confirmed, with a confirmed
membership in at least one of the lists, matching the segment's filter. The target is set
with the draft and can change until the issue is published (then it is frozen, like its
content).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from herald.core.db import Connection, Database
from herald.core.errors import Conflict, ValidationError
from herald.issues import targets
from herald.issues.domain import ListRef, SegmentRef, Target, TargetChoice
from herald.issues.targets import Condition
from herald.segments.domain import parse_filter

MAX_CHOICES = 500  # lists and segments the editor offers


@dataclass(frozen=True, slots=True)
class TargetOptions:
    """What the editor's "Send to" fieldset offers."""

    lists: list[ListRef]
    segments: list[SegmentRef]


async def options(db: Database) -> TargetOptions:
    async with db.connection() as conn:
        lists, segments = await targets.choices(conn, MAX_CHOICES)
    return TargetOptions(lists, segments)


async def apply(conn: Connection, issue_id: uuid.UUID, choice: TargetChoice) -> None:
    """Set an editable issue's target (inside the caller's transaction): a list or segment
    that does not exist is a 400 naming it; an issue published meanwhile is a 409."""
    found = await targets.list_ids(conn, choice.slugs)
    missing = [slug for slug in choice.slugs if slug not in found]
    if missing:
        raise ValidationError(f"no list has the slug {missing[0]!r}", field="lists")
    if choice.segment_id is not None and await targets.segment(conn, choice.segment_id) is None:
        raise ValidationError("no such segment", field="segment_id")
    lists = [found[slug] for slug in choice.slugs] if choice.slugs else None  # (): keep them
    if not await targets.set_target(conn, issue_id, lists, choice.segment_id):
        raise Conflict("this issue is published: its target can no longer be changed")


async def condition(conn: Connection, target: Target) -> Condition:
    """The target's segment, parsed (the fan-out and the count compile it into their
    statements); None for everyone on the lists. A segment whose stored filter is no longer
    valid is a 400 naming the problem, never a silent "everyone"."""
    if target.segment is None:
        return None
    stored = await targets.segment_filter(conn, target.segment.id)
    if stored is None:  # deleted meanwhile (issues hold it: ON DELETE RESTRICT)
        raise ValidationError("the issue's segment no longer exists", field="segment_id")
    try:
        return parse_filter(json.loads(stored))
    except ValidationError as exc:
        raise ValidationError(
            f"the segment “{target.segment.name}” cannot be used: {exc.message}",
            field="segment_id",
        ) from None
