"""The ``subscribers.import`` job: one step reads the next :data:`BATCH_SIZE` rows of the
file from its checkpoint and writes them in one statement.

Each step runs in the job runner's transaction, which also records the step's checkpoint
(the byte offset and line after the last row read, in ``jobs.position``) fenced by the
lease: the rows written, their error report lines, the confirmation emails (opt-in) and
the counts commit with the checkpoint or not at all. A worker killed mid-step loses the
step; the next runner starts again from the last checkpoint, so no row is written twice
and no confirmation email is queued twice.

Only what a step needs is in memory: the file is read in pieces of :data:`PIECE_BYTES`
from ``job_files`` (``substring`` of the stored chunk) and a batch of rows.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from herald.core.config import Settings
from herald.core.db import Connection
from herald.core.errors import ValidationError
from herald.design.current import design_in
from herald.imports import repository
from herald.imports.csvstream import (
    Record,
    RecordError,
    RecordSplitter,
    fields,
    is_blank,
)
from herald.imports.domain import KIND, Counts, Mapping, Mode, Row, RowError, parse_row
from herald.jobs.domain import Job, Step
from herald.segments.attributes import MAX_BYTES
from herald.segments.attributes import size as attribute_size
from herald.subscriptions.domain import (
    NewSubscriber,
    SubscriberEmail,
    SubscriberName,
    hash_token,
    new_confirmation_token,
)
from herald.subscriptions.emails import confirmation_email

__all__ = ["KIND", "ImportJob"]

CHUNK_BYTES = 1024 * 1024  # an upload is stored in chunks of this size (the last: less)
PIECE_BYTES = 256 * 1024  # read from a chunk at a time
BATCH_SIZE = 5000
EMAILS_AT_ONCE = 250  # opt-in: confirmation emails rendered and written together
TOO_LARGE_MERGED = (
    f"the attributes merged with the subscriber's would be over {MAX_BYTES // 1024} KiB"
)


@dataclass(frozen=True, slots=True)
class Position:
    offset: int
    line: int

    @classmethod
    def parse(cls, raw: str | None) -> Position | None:
        if raw is None:
            return None
        data = json.loads(raw)
        return cls(int(data["offset"]), int(data["line"]))

    def __str__(self) -> str:
        return json.dumps({"offset": self.offset, "line": self.line})


async def read_records(
    conn: Connection, job_id: uuid.UUID, size: int, start: Position | None, limit: int
) -> tuple[list[Record], bool]:
    """Up to ``limit`` records from ``start`` (None: the file's beginning, byte-order mark
    skipped); True when they reach the end of the file."""
    offset = 0 if start is None else start.offset
    splitter = RecordSplitter(offset, 1 if start is None else start.line)
    found: list[Record] = []
    while offset < size and len(found) < limit:
        seq, within = divmod(offset, CHUNK_BYTES)
        length = min(PIECE_BYTES, CHUNK_BYTES - within, size - offset)
        piece = await repository.read_piece(conn, job_id, seq, within, length)
        if not piece:
            raise ValidationError("the uploaded file is incomplete", field="file")
        offset += len(piece)
        found.extend(splitter.feed(piece))
    if offset >= size and len(found) < limit:
        found.extend(splitter.finish())
    if len(found) > limit:
        return found[:limit], False
    return found, offset >= size and (not found or found[-1].end >= size)


@dataclass(frozen=True)
class ImportJob:
    """The :class:`~herald.jobs.runner.JobHandler` of :data:`KIND`."""

    settings: Settings
    batch_size: int = BATCH_SIZE

    async def step(self, conn: Connection, job: Job) -> Step:
        record = await repository.get_import(conn, job.id)
        if record is None or record.uploaded_at is None or record.columns is None:
            raise ValidationError("this import was never started: its upload or mapping is missing")
        assert record.header is not None
        if len(await repository.list_refs(conn, record.list_ids)) != len(record.list_ids):
            # Without its lists a new subscriber would land in the default list (0018's
            # trigger adds it to any subscription written without a membership).
            raise ValidationError("a list this import adds to was deleted")
        mapping = Mapping.from_json(record.header, record.columns)
        start = Position.parse(job.position)
        records, at_end = await read_records(
            conn, job.id, record.size, start, self.batch_size + (1 if start is None else 0)
        )
        if start is None and records:
            records = records[1:]  # the header row
        counts = await self._write(conn, job.id, record, mapping, records)
        totals = await repository.add_counts(conn, job.id, counts)
        done = counts.imported + counts.updated
        skipped = counts.skipped + counts.rejected
        if at_end:
            return Step(done, skipped, None, f"Import finished: {totals.summary()}.")
        last = records[-1]
        return Step(done, skipped, str(Position(last.end, last.next_line)))

    def summary(self, job: Job) -> str:
        return (
            f"Import finished: {job.done:,} imported or updated, "
            f"{job.skipped:,} skipped or rejected."
        )

    async def _write(
        self,
        conn: Connection,
        job_id: uuid.UUID,
        record: repository.ImportRecord,
        mapping: Mapping,
        records: list[Record],
    ) -> Counts:
        mode = record.mode
        rows: dict[str, Row] = {}
        repeats: dict[str, int] = {}
        errors: list[tuple[int, str | None, str]] = []
        for found in records:
            if is_blank(found):
                continue
            try:
                row = _row(mapping, found, record.delimiter)
            except RowError as exc:
                errors.append((found.line, exc.email, str(exc)))
                continue
            key = row.email.lower()
            earlier = rows.get(key)
            if earlier is not None:
                try:
                    row = _merge(earlier, row)
                except RowError as exc:
                    errors.append((found.line, row.email, str(exc)))
                    continue
                repeats[key] = repeats.get(key, 0) + 1
            rows[key] = row
        batch = await repository.upsert_batch(
            conn,
            list(rows.values()),
            record.list_ids,
            confirmed=mode is Mode.CONFIRMED,
            source=f"import:{job_id}",
        )
        written = batch.written
        refused_again = 0
        for email in batch.too_large:
            # The address's rows of this batch were merged into its last one: refused
            # together, reported on that line.
            row = rows.pop(email.lower())
            again = repeats.pop(email.lower(), 0)
            refused_again += again
            reason = TOO_LARGE_MERGED + (f" (with {again} earlier rows of it)" if again else "")
            errors.append((row.line, row.email, reason))
        await repository.insert_errors(conn, job_id, errors)
        if mode is Mode.OPT_IN:
            await self._confirmations(conn, [w for w in written if w.to_confirm])
        imported = sum(1 for w in written if w.inserted)
        kept = {w.email.lower() for w in written}
        again_kept = sum(n for key, n in repeats.items() if key in kept)
        again_skipped = sum(n for key, n in repeats.items() if key not in kept)
        return Counts(
            imported=imported,
            updated=len(written) - imported + again_kept,
            skipped=len(rows) - len(written) + again_skipped,
            rejected=len(errors) + refused_again,
        )

    async def _confirmations(self, conn: Connection, members: list[repository.Written]) -> None:
        """A token and a confirmation email for each new member, as the form's sign-up
        queues them: rendered here and written :data:`EMAILS_AT_ONCE` at a time (two
        statements each), so a batch never holds 5,000 rendered emails (~20 KB each)."""
        if not members:
            return
        design = await design_in(conn, self.settings)
        limits = self.settings.subscriptions
        for start in range(0, len(members), EMAILS_AT_ONCE):
            chunk = members[start : start + EMAILS_AT_ONCE]
            hashes: list[bytes] = []
            messages: list[str] = []
            for member in chunk:
                token = new_confirmation_token()
                who = NewSubscriber(SubscriberEmail(member.email), SubscriberName(member.name))
                message = confirmation_email(
                    who,
                    token=token,
                    base_url=self.settings.public_base_url,
                    sender=self.settings.sender,
                    ttl_hours=limits.token_ttl_hours,
                    branding=design.branding,
                    layout_source=design.layout_source,
                )
                hashes.append(hash_token(token))
                messages.append(json.dumps(message.to_json()))
            await repository.enqueue_confirmations(
                conn,
                hashes,
                [m.id for m in chunk],
                [m.email for m in chunk],
                messages,
                ttl_seconds=limits.token_ttl_hours * 3600,
                max_attempts=self.settings.delivery.max_attempts,
            )


def _row(mapping: Mapping, record: Record, delimiter: str) -> Row:
    try:
        cells = fields(record, delimiter)
    except RecordError as exc:
        raise RowError(str(exc)) from None
    return parse_row(mapping, record.line, cells)


def _merge(earlier: Row, later: Row) -> Row:
    """The same address twice in one batch: as if written one after the other. A later
    row whose attributes would take the merged ones past the size limit is refused
    (``RowError``), as the database refuses such a merge with an existing subscriber."""
    attributes = {**json.loads(earlier.attributes), **json.loads(later.attributes)}
    if attribute_size(attributes) > MAX_BYTES:
        raise RowError(TOO_LARGE_MERGED, later.email)
    return Row(
        later.line,
        earlier.email,  # an existing address keeps its spelling
        later.name if later.name is not None else earlier.name,
        json.dumps(attributes, ensure_ascii=False, separators=(",", ":")),
    )
