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
from datetime import datetime
from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field

from herald.core import signing
from herald.core.config import Settings
from herald.core.errors import ValidationError
from herald.subscriptions.listing import Cursor

PURPOSE = "api-cursor"
MAX_LIMIT = 200
DEFAULT_LIMIT = 50
MAX_CURSOR_LENGTH = 512

T = TypeVar("T")

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
    payload = json.dumps(
        {"k": kind, "o": order, "t": cursor.created_at.isoformat(), "i": str(cursor.id)},
        separators=(",", ":"),
    )
    return signing.sign(settings, PURPOSE, payload)


def _cursor(payload: str | None, kind: str, order: str) -> Cursor | None:
    try:
        data = json.loads(payload) if payload is not None else None
    except ValueError:
        return None
    if (
        not isinstance(data, dict)
        or data.get("k") != kind
        or data.get("o") != order
        or not isinstance(data.get("t"), str)
        or not isinstance(data.get("i"), str)
    ):
        return None
    try:
        at = datetime.fromisoformat(data["t"])
        ident = uuid.UUID(data["i"])
    except ValueError:
        return None
    return Cursor(at, ident) if at.tzinfo is not None else None


def decode(settings: Settings, kind: str, raw: str, order: str) -> Cursor:
    """The cursor ``raw`` stands for, if it is one of ours for this list and order."""
    cursor = _cursor(signing.unsign(settings, PURPOSE, raw), kind, order)
    if cursor is None:
        raise ValidationError(
            "cursor is not valid: pass the next_cursor of a page of this list, with its filters",
            field="cursor",
        )
    return cursor
