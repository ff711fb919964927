"""Suppression values: reasons, rows, the list's filter and keyset cursor. Pure: no web
framework, no database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from herald.core.errors import ValidationError
from herald.subscriptions.domain import SuppressionReason

MAX_QUERY_LENGTH = 320
MAX_SOURCE_LENGTH = 200
KEY_BYTES = 32
_FAR_FUTURE = datetime(9999, 12, 31, tzinfo=UTC)
_KEY_MAX = b"\xff" * KEY_BYTES


Reason = SuppressionReason  # the one enum, shared with the sign-up's check

# What an operator may add by hand (the others are recorded by what causes them).
ADDABLE = (Reason.MANUAL, Reason.HARD_BOUNCE, Reason.COMPLAINT)


@dataclass(frozen=True, slots=True)
class Suppression:
    key: bytes  # herald_address_key(email): the row's identity
    email: str | None  # None once erased
    reason: Reason
    source: str
    created_at: datetime

    @property
    def removable(self) -> bool:
        return self.reason is not Reason.ERASED and self.email is not None


@dataclass(frozen=True, slots=True)
class Cursor:
    """A row's place, newest first: ``(created_at, key)``; written ``<iso time>~<hex>``."""

    created_at: datetime
    key: bytes

    @classmethod
    def start(cls) -> Cursor:
        return cls(_FAR_FUTURE, _KEY_MAX)

    @classmethod
    def parse(cls, raw: str, *, field: str = "after") -> Cursor:
        when, _, key = raw.partition("~")
        try:
            cursor: Cursor | None = cls(datetime.fromisoformat(when), bytes.fromhex(key))
        except ValueError:
            cursor = None
        if cursor is None or cursor.created_at.tzinfo is None or len(cursor.key) != KEY_BYTES:
            raise ValidationError("this page link is not valid", field=field)
        return cursor

    def __str__(self) -> str:
        return f"{self.created_at.isoformat()}~{self.key.hex()}"


@dataclass(frozen=True, slots=True)
class Filter:
    """Which rows a page shows: one reason (None: all), and a text the kept address
    contains — or that is an address whose key matches (so an erased row is found by
    the full address, which it no longer holds)."""

    reason: Reason | None = None
    query: str = ""

    @classmethod
    def parse(cls, *, reason: str = "", q: str = "") -> Filter:
        text = q.strip()
        if len(text) > MAX_QUERY_LENGTH:
            raise ValidationError(
                f"search is too long: at most {MAX_QUERY_LENGTH} characters", field="q"
            )
        if "\x00" in text:
            raise ValidationError("search must not contain NUL characters", field="q")
        return cls(Reason.parse(reason) if reason else None, text)

    def params(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.reason is not None:
            out["reason"] = self.reason.value
        if self.query:
            out["q"] = self.query
        return out


def source_text(raw: str) -> str:
    """Who or what added a row, bounded to the column's size."""
    return raw.strip()[:MAX_SOURCE_LENGTH]
