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

import uuid
from dataclasses import dataclass

from herald.core.db import Connection, Database
from herald.core.errors import Conflict, ValidationError
from herald.issues import targets
from herald.issues.domain import ListRef, SegmentRef, Target, TargetChoice
from herald.issues.targets import Condition

MAX_CHOICES = 500  # lists and segments the editor offers
SEGMENTS_NOT_READY = (
    "this issue is limited to a segment, and sending to segments is not available yet: "
    "choose “Everyone on the lists” to publish it"
)


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
    lists = [found[slug] for slug in choice.slugs]
    if not await targets.set_target(conn, issue_id, lists, choice.segment_id):
        raise Conflict("this issue is published: its target can no longer be changed")


async def condition(conn: Connection, target: Target) -> Condition:  # noqa: ARG001
    """The target's segment as a SQL condition over the subscription ``s``; None for
    everyone on the lists. Until segments can be compiled, an issue with a segment cannot
    be sent (a 400 saying so, never a silent "everyone")."""
    if target.segment is None:
        return None
    raise ValidationError(SEGMENTS_NOT_READY, field="segment_id")
