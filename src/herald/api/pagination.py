"""Keyset pagination for the JSON API's lists: opaque, signed cursors.

A list answers ``{"items": [...], "next_cursor": "..."}``; the client passes
``cursor=<next_cursor>`` (with the same filters) for the next page, until
``next_cursor`` is null. The cursor is the last row's place in the order,
``(created_at, id)`` and the order itself, signed with a key of its own
(``core/signing``): clients cannot make one up, and a forged, garbled or foreign
cursor (another list's, another instance's) is a 400 naming ``cursor`` — never a
query with nonsense bounds, never a 500.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import AfterValidator, AwareDatetime, BaseModel, Field

from herald.core import signing
from herald.core.config import Settings
from herald.core.errors import ValidationError
from herald.subscriptions.listing import Cursor

PURPOSE = "api-cursor"
MAX_LIMIT = 200
DEFAULT_LIMIT = 50
MAX_CURSOR_LENGTH = 512

T = TypeVar("T")


def _storable(value: datetime) -> datetime:
    """In UTC, as Postgres gets it: a time whose UTC is past year 9999 (or before year 1)
    would fail only when the driver converts it."""
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueError("is out of range (years 1 to 9999 in UTC)") from None


# A point in time from a client: ISO 8601 with a time zone, representable in UTC.
Timestamp = Annotated[AwareDatetime, AfterValidator(_storable)]

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Items per page (1-{MAX_LIMIT}).")]
CursorParam = Annotated[
    str | None,
    Query(
        max_length=MAX_CURSOR_LENGTH,
        description="`next_cursor` of the previous page; leave out for the first.",
    ),
]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


def encode(settings: Settings, kind: str, cursor: Cursor, order: str) -> str:
    """The cursor of a list in ``(created_at, id)`` order."""
    return _sign(settings, kind, order, {"t": cursor.created_at.isoformat(), "i": str(cursor.id)})


def decode(settings: Settings, kind: str, raw: str, order: str) -> Cursor:
    """The cursor ``raw`` stands for, if it is one of ours for this list and order."""
    cursor = _cursor(_unsign(settings, kind, raw, order))
    if cursor is None:
        raise _invalid()
    return cursor


def encode_id(settings: Settings, kind: str, position: int, order: str) -> str:
    """The cursor of a list in the order of an integer id (an issue's deliveries)."""
    return _sign(settings, kind, order, {"n": position})


def decode_id(settings: Settings, kind: str, raw: str, order: str) -> int:
    data = _unsign(settings, kind, raw, order)
    position = data.get("n") if data is not None else None
    if not isinstance(position, int) or isinstance(position, bool) or not 0 < position < 2**63:
        raise _invalid()
    return position


def encode_uuid(settings: Settings, kind: str, position: uuid.UUID, order: str) -> str:
    """The cursor of a list in the order of a uuid (a list's members, by subscriber id)."""
    return _sign(settings, kind, order, {"u": str(position)})


def decode_uuid(settings: Settings, kind: str, raw: str, order: str) -> uuid.UUID:
    data = _unsign(settings, kind, raw, order)
    position = data.get("u") if data is not None else None
    if not isinstance(position, str):
        raise _invalid()
    try:
        return uuid.UUID(position)
    except ValueError:
        raise _invalid() from None


def encode_text(settings: Settings, kind: str, position: str, order: str) -> str:
    """The cursor of a list whose feature writes its own position as text (the
    suppression list: a time and an address key)."""
    return _sign(settings, kind, order, {"s": position})


def decode_text(settings: Settings, kind: str, raw: str, order: str) -> str:
    data = _unsign(settings, kind, raw, order)
    position = data.get("s") if data is not None else None
    if not isinstance(position, str):
        raise _invalid()
    return position


def _sign(settings: Settings, kind: str, order: str, fields: dict[str, object]) -> str:
    payload = json.dumps({"k": kind, "o": order, **fields}, separators=(",", ":"))
    return signing.sign(settings, PURPOSE, payload)


def _unsign(settings: Settings, kind: str, raw: str, order: str) -> dict[str, object] | None:
    """The fields of a cursor signed by this instance for this list and order, or None."""
    payload = signing.unsign(settings, PURPOSE, raw)
    try:
        data = json.loads(payload) if payload is not None else None
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("k") != kind or data.get("o") != order:
        return None
    return data


def _cursor(data: dict[str, object] | None) -> Cursor | None:
    if data is None or not isinstance(data.get("t"), str) or not isinstance(data.get("i"), str):
        return None
    try:
        at = datetime.fromisoformat(str(data["t"]))
        ident = uuid.UUID(str(data["i"]))
    except ValueError:
        return None
    return Cursor(at, ident) if at.tzinfo is not None else None


def _invalid() -> ValidationError:
    return ValidationError(
        "cursor is not valid: pass the next_cursor of a page of this list, with its filters",
        field="cursor",
    )
