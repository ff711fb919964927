"""The archive's values and rules: entries, slugs, cache validators. No I/O."""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime

from herald.core.errors import ValidationError

ANONYMOUS_NAME = "reader"  # {{ subscriber.name }} for an anonymous reader: "Dear reader,"
PAGE_SIZE = 20
FEED_SIZE = 20
MAX_SLUG = 100  # the column's CHECK (migration 0030)
_SLUG = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
# Characters XML 1.0 cannot carry (a title may hold control characters; a feed must parse).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def is_issue_slug(text: str) -> bool:
    return len(text) <= MAX_SLUG and _SLUG.fullmatch(text) is not None


def parse_before(raw: str | None) -> str | None:
    """The index page's cursor: the slug of the last issue of the previous page."""
    if raw is None or raw == "":
        return None
    if not is_issue_slug(raw):
        raise ValidationError(
            "before must be the slug of an issue of this archive, like weekly-news-2",
            field="before",
        )
    return raw


def xml_safe(text: str) -> str:
    return _NOT_XML.sub("", text)


@dataclass(frozen=True, slots=True)
class Entry:
    """A public sent issue as its list's archive shows it."""

    id: uuid.UUID
    slug: str
    title: str
    preheader: str
    published_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ArchiveList:
    """A public list as its archive shows it."""

    id: uuid.UUID
    slug: str
    name: str
    description: str
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Validators:
    """A response's ``ETag`` and ``Last-Modified``, and whether a request's conditions
    (RFC 9110 §13: ``If-None-Match`` wins over ``If-Modified-Since``) make it a 304."""

    etag: str
    last_modified: datetime

    @classmethod
    def of(cls, *parts: object, last_modified: datetime) -> Validators:
        digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:32]
        return cls(f'"{digest}"', last_modified.astimezone(UTC).replace(microsecond=0))

    @property
    def http_date(self) -> str:
        return format_datetime(self.last_modified, usegmt=True)

    def not_modified(self, if_none_match: str | None, if_modified_since: str | None) -> bool:
        if if_none_match is not None:
            tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
            return "*" in tags or self.etag in tags
        if if_modified_since:
            try:
                since = parsedate_to_datetime(if_modified_since)
            except (TypeError, ValueError, IndexError):
                return False  # an unreadable date is ignored (RFC 9110 §13.1.3)
            if since.tzinfo is None:
                since = since.replace(tzinfo=UTC)
            return self.last_modified <= since
        return False


def latest(entries: list[Entry], news_list: ArchiveList) -> datetime:
    """When a feed or page last changed: its newest issue or the list itself."""
    return max([news_list.updated_at, *(e.updated_at for e in entries)])
