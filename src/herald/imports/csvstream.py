"""A CSV file read as a stream of records with their byte offsets: the import's parser.

An import's file lies in the database in chunks and is read a piece at a time by jobs
that may stop after any record and resume, in another process, from a checkpoint. So
the parser works on bytes and knows, for every record, where it starts and ends in the
file and on which line it starts; the checkpoint is the byte offset after a record.

Records end at a line feed outside quotes (RFC 4180: a field holding a line break, a
delimiter or a quote is quoted, its quotes doubled; so a record is complete when it has
an even number of ``"``). Each complete record is then split into fields by the ``csv``
module. A record longer than :data:`MAX_RECORD_BYTES` (a 10 MB field, a quote that
never closes) is passed over without being kept in memory and reported as too long;
the next record starts where its quotes balance again. UTF-8 only (a byte-order mark at
the start is skipped); CRLF and LF line ends both work.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

MAX_RECORD_BYTES = 256 * 1024  # one row; far above any real subscriber row
BOM = b"\xef\xbb\xbf"
DELIMITERS = (",", ";", "\t", "|")

csv.field_size_limit(max(csv.field_size_limit(), MAX_RECORD_BYTES + 1))


@dataclass(frozen=True, slots=True)
class Record:
    """One record of the file: ``data`` is its raw bytes (with its line end), None when it
    was longer than :data:`MAX_RECORD_BYTES`."""

    start: int  # byte offset of its first byte
    end: int  # byte offset after its last byte (the checkpoint after it)
    line: int  # the line it starts on, from 1
    next_line: int  # the line the record after it starts on
    data: bytes | None
    balanced: bool  # False: it ends inside a quoted field (only at the end of the file)


class RecordSplitter:
    """Cuts bytes fed in order (from ``offset``, at line ``line``) into records."""

    def __init__(self, offset: int = 0, line: int = 1) -> None:
        self._offset = offset  # where the pending record starts
        self._line = line
        self._pending = bytearray()
        self._pending_size = 0
        self._pending_lines = 0
        self._odd = False  # inside quotes
        self._too_long = False
        # At the file's start: its first bytes, until it is known whether they are a BOM.
        self._head: bytearray | None = bytearray() if offset == 0 else None

    def feed(self, data: bytes) -> Iterator[Record]:
        if self._head is not None:
            self._head += data
            if len(self._head) < len(BOM):
                return
            data = self._skip_bom()
        yield from self._feed(data)

    def _skip_bom(self) -> bytes:
        assert self._head is not None
        head = bytes(self._head)
        self._head = None
        if head.startswith(BOM):
            self._offset = len(BOM)
            return head[len(BOM) :]
        return head

    def _feed(self, data: bytes) -> Iterator[Record]:
        pos = 0
        size = len(data)
        while pos < size:
            nl = data.find(b"\n", pos)
            stop = size if nl < 0 else nl + 1
            segment = data[pos:stop]
            pos = stop
            if segment.count(b'"') & 1:
                self._odd = not self._odd
            self._pending_size += len(segment)
            if not self._too_long:
                if self._pending_size > MAX_RECORD_BYTES:
                    self._too_long = True
                    self._pending.clear()
                else:
                    self._pending += segment
            if nl < 0:
                break
            self._pending_lines += 1
            if not self._odd:
                yield self._emit(balanced=True)

    def finish(self) -> Iterator[Record]:
        """The last record, when the file does not end with a line feed."""
        if self._head is not None:
            yield from self._feed(self._skip_bom())
        if self._pending_size:
            yield self._emit(balanced=not self._odd)

    def _emit(self, *, balanced: bool) -> Record:
        start = self._offset
        end = start + self._pending_size
        record = Record(
            start=start,
            end=end,
            line=self._line,
            next_line=self._line + self._pending_lines,
            data=None if self._too_long else bytes(self._pending),
            balanced=balanced,
        )
        self._offset = end
        self._line += self._pending_lines
        self._pending.clear()
        self._pending_size = 0
        self._pending_lines = 0
        self._too_long = False
        self._odd = False
        return record


def records(pieces: Iterable[bytes], offset: int = 0, line: int = 1) -> Iterator[Record]:
    """The records of consecutive ``pieces`` of a file starting at byte ``offset`` (a
    record boundary, line ``line``); a byte-order mark at offset 0 is skipped."""
    splitter = RecordSplitter(offset, line)
    for piece in pieces:
        yield from splitter.feed(piece)
    yield from splitter.finish()


class RecordError(ValueError):
    """A record that cannot be read as CSV; the message says why, for people."""


def fields(record: Record, delimiter: str = ",") -> list[str]:
    """The fields of ``record``; :class:`RecordError` naming the problem."""
    if record.data is None:
        raise RecordError(f"the row is longer than {MAX_RECORD_BYTES // 1024} KiB")
    if not record.balanced:
        raise RecordError("a quoted field is never closed (a missing closing quote)")
    try:
        text = record.data.decode("utf-8")
    except UnicodeDecodeError:
        raise RecordError("the row is not valid UTF-8 (save the file as UTF-8)") from None
    if '"' not in text:  # the common row: no quoting, so the fields are the pieces
        line = text[:-1] if text.endswith("\n") else text
        line = line[:-1] if line.endswith("\r") else line
        if "\r" not in line and "\n" not in line:
            return line.split(delimiter)
    try:
        return next(csv.reader((text,), delimiter=delimiter, strict=False))
    except StopIteration:  # pragma: no cover - a record always holds a line end or text
        return []
    except csv.Error as exc:
        raise RecordError(
            f"the row is not valid CSV ({exc}): a field holding a quote, a line break or "
            "the delimiter must be quoted, its quotes doubled"
        ) from None


def is_blank(record: Record) -> bool:
    return record.data is not None and not record.data.strip()


def sniff_delimiter(header: bytes) -> str:
    """The delimiter of a header row: the most frequent of , ; tab | (a comma on a tie)."""
    counts = {d: header.count(d.encode()) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: (counts[d], d == ","))
    return best if counts[best] else ","
