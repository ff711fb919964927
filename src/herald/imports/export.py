"""Exports: every subscriber (or a list's members) as CSV or JSON Lines, streamed.

Read in keyset pages of :data:`PAGE_SIZE` rows (``(created_at, id)`` order, the
``subscriptions_created`` index), one short query each, and written out page by page:
constant memory for any size, and no transaction held open while a slow client reads
(a server-side cursor would keep one open for the whole download, past
``idle_in_transaction_session_timeout``, and cannot work behind a transaction pooler).
The price: rows changed during a long export are seen as they are when their page is
read, not as of one instant.

Formats (the same fields in both):

* ``csv``: ``email,name,status,created_at,confirmed_at,attributes`` — one fixed column
  ``attributes`` holding the JSON object, not a column per key: lossless (nested values,
  types, keys with commas), the same header for every export whatever the keys, and one
  pass (a column per key would need every key before the first row). Re-importing the
  file keeps the attributes as one ``attributes`` attribute; the JSON form is for tools.
* ``json``: JSON Lines (one object per line, ``application/x-ndjson``): any line can be
  parsed alone, so a million rows are read as they arrive (a JSON array cannot be parsed
  before it ends by most tools).

With a list, ``status`` and ``confirmed_at`` are the membership's in that list.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from herald.core.db import Database
from herald.core.errors import NotFound, ValidationError
from herald.imports import repository
from herald.lists.domain import is_slug
from herald.segments import repository as segments

PAGE_SIZE = 5000
CSV_COLUMNS = ("email", "name", "status", "created_at", "confirmed_at", "attributes")
_START = (datetime(1970, 1, 1, tzinfo=UTC), uuid.UUID(int=0))
_EVERYONE = repository.ExportFilter()


class ExportFormat(StrEnum):
    CSV = "csv"
    JSON = "json"

    @classmethod
    def parse(cls, raw: str | None) -> ExportFormat:
        try:
            return cls((raw or "csv").strip().lower())
        except ValueError:
            raise ValidationError("format must be csv or json", field="format") from None

    @property
    def media_type(self) -> str:
        return "text/csv; charset=utf-8" if self is ExportFormat.CSV else "application/x-ndjson"

    @property
    def extension(self) -> str:
        return "csv" if self is ExportFormat.CSV else "jsonl"


@dataclass(frozen=True, slots=True)
class Export:
    """A prepared export: the list is known to exist; ``chunks()`` streams it."""

    db: Database
    format: ExportFormat
    list_id: uuid.UUID | None
    list_slug: str | None
    where: repository.ExportFilter = _EVERYONE

    @property
    def filename(self) -> str:
        return f"subscribers-{self.list_slug or 'all'}.{self.format.extension}"

    async def chunks(self) -> AsyncIterator[str]:
        if self.format is ExportFormat.CSV:
            yield _csv_lines([CSV_COLUMNS])
        after = _START
        while True:
            async with self.db.connection() as conn:
                rows = await repository.export_page(
                    conn, after, PAGE_SIZE, self.list_id, self.where
                )
            if rows:
                yield self._page(rows)
            if len(rows) < PAGE_SIZE:
                return
            after = (rows[-1].created_at, rows[-1].id)

    def _page(self, rows: list[repository.ExportRow]) -> str:
        if self.format is ExportFormat.CSV:
            return _csv_lines(
                [
                    (
                        r.email,
                        r.name,
                        r.status,
                        r.created_at.isoformat(),
                        r.confirmed_at.isoformat() if r.confirmed_at else "",
                        r.attributes,
                    )
                    for r in rows
                ]
            )
        return "".join(
            json.dumps(
                {
                    "email": r.email,
                    "name": r.name,
                    "status": r.status,
                    "created_at": r.created_at.isoformat(),
                    "confirmed_at": r.confirmed_at.isoformat() if r.confirmed_at else None,
                    "attributes": json.loads(r.attributes),
                },
                ensure_ascii=False,
            )
            + "\n"
            for r in rows
        )


def _csv_lines(rows: list[tuple[str, ...]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue()


@dataclass(frozen=True)
class ExportService:
    db: Database

    async def prepare(
        self,
        *,
        list_slug: str | None,
        format: ExportFormat,
        where: repository.ExportFilter | None = None,
        segment_id: uuid.UUID | None = None,
    ) -> Export:
        """The export of ``list_slug`` (None: every subscriber) narrowed by ``where`` and
        the saved segment ``segment_id``; NotFound for no such list or segment."""
        slug = (list_slug or "").strip() or None
        where = where or repository.ExportFilter()
        if slug is not None and not is_slug(slug):
            raise NotFound(f"no list with the slug {slug[:60]!r}")
        if segment_id is not None:
            async with self.db.connection() as conn:
                segment = await segments.get(conn, segment_id)
            if segment is None:
                raise NotFound("no such segment")
            where = dataclasses.replace(where, segment=segment.filter)
        list_id = None
        if slug is not None:
            async with self.db.connection() as conn:
                found = await repository.lists_by_slug(conn, [slug])
            if not found:
                raise NotFound(f"no list with the slug {slug!r}")
            list_id = found[0].id
        return Export(self.db, format, list_id, slug, where)
