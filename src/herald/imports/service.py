"""Imports as use cases: upload a file (streamed into ``job_files``), choose its mapping,
lists and mode, start it, follow it, read its error report.

An import is a job held by its uploader until started: created ``running`` under a
lease token kept in ``imports.hold_token`` for :data:`HOLD_SECONDS`, so no worker runs
a file still uploading or not yet mapped. Starting it releases the job to the queue
(any worker, or the CLI's own runner, takes it). An upload never finished or never
started is claimed once its hold runs out and fails ("never started"); housekeeping
deletes it with its file 30 days later.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from herald.core.config import Settings
from herald.core.db import Database
from herald.core.errors import Conflict, NotFound, ValidationError
from herald.core.telemetry import get_logger
from herald.imports import repository
from herald.imports.csvstream import fields, records, sniff_delimiter
from herald.imports.domain import KIND, Mapping, Mode, Role
from herald.imports.job import CHUNK_BYTES, ImportJob
from herald.jobs import repository as jobs
from herald.jobs.domain import Job
from herald.jobs.runner import run_now
from herald.lists.domain import DEFAULT_SLUG, is_slug

log = get_logger("herald.imports")

HOLD_SECONDS = 24 * 3600.0
MAX_FILENAME = 255
MAX_LISTS = 20
HEADER_BYTES = 64 * 1024
ERRORS_PAGE = 5000
REPORT_PIECE = 64 * 1024


@dataclass(frozen=True, slots=True)
class ImportView:
    job: Job
    record: repository.ImportRecord
    lists: list[repository.ListRef]

    @property
    def started(self) -> bool:
        return self.record.columns is not None

    @property
    def state(self) -> str:
        if self.record.uploaded_at is None and self.job.status.open:
            return "uploading"
        if not self.started and self.job.status.open:
            return "mapping"
        return self.job.status.value


@dataclass(frozen=True)
class ImportService:
    db: Database
    settings: Settings

    async def upload(
        self, filename: str, data: AsyncIterable[bytes], *, created_by: uuid.UUID | None
    ) -> ImportView:
        """Store ``data`` (any piece sizes) in chunks of :data:`CHUNK_BYTES`, one short
        transaction each, and read its header row. The import waits for :meth:`start`."""
        base = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
        name = "".join(c for c in base if c.isprintable())[:MAX_FILENAME] or "upload.csv"
        job_id, _hold = await self._create(name, created_by)
        seq = 0
        lines = 0
        first = b""
        buffer = bytearray()
        try:
            async for piece in data:
                buffer += piece
                while len(buffer) >= CHUNK_BYTES:
                    chunk = bytes(buffer[:CHUNK_BYTES])
                    del buffer[:CHUNK_BYTES]
                    first = first or chunk[:HEADER_BYTES]
                    lines += chunk.count(b"\n")
                    await self._store(job_id, seq, chunk)
                    seq += 1
            if buffer or seq == 0:
                chunk = bytes(buffer)
                first = first or chunk[:HEADER_BYTES]
                lines += chunk.count(b"\n")
                await self._store(job_id, seq, chunk)
            header, delimiter = _header(first)
            Mapping.of(header, [_any_role(i) for i in range(len(header))])  # column limits
        except BaseException:
            await self._abandon(job_id, "the upload did not finish")
            raise
        async with self.db.transaction() as conn:
            await repository.finish_upload(conn, job_id, header, delimiter)
            await jobs.set_total(conn, job_id, max(lines - 1, 0) or None)
        log.info("import uploaded", job_id=str(job_id), chunks=seq + 1)
        return await self.get(job_id)

    async def _create(
        self, filename: str, created_by: uuid.UUID | None
    ) -> tuple[uuid.UUID, uuid.UUID]:
        hold = uuid.uuid4()
        async with self.db.transaction() as conn:
            job = await jobs.insert(
                conn,
                kind=KIND,
                params={},
                description=f"Importing {filename}",
                total=None,
                created_by=created_by,
            )
            held = await jobs.claim_one(conn, job.id, hold, HOLD_SECONDS)
            assert held is not None  # created in this transaction
            await repository.insert_import(conn, job.id, filename, created_by, hold)
        return job.id, hold

    async def _store(self, job_id: uuid.UUID, seq: int, chunk: bytes) -> None:
        async with self.db.transaction() as conn:
            if not await repository.add_chunk(conn, job_id, seq, chunk):
                raise Conflict("this upload is already complete")

    async def _abandon(self, job_id: uuid.UUID, reason: str) -> None:
        try:
            async with self.db.transaction() as conn:
                await jobs.cancel(conn, job_id, reason)
        except Exception:  # noqa: BLE001 - the original error matters more
            log.warning("import: could not cancel an abandoned upload", job_id=str(job_id))

    async def start(
        self,
        job_id: uuid.UUID,
        *,
        roles: Sequence[str] | None,
        list_slugs: Sequence[str],
        mode: Mode,
        run_for: float = 0.0,
    ) -> ImportView:
        """The mapping (None: guessed from the header, as the CLI does), the lists and
        the mode; the job goes to the queue, after running here for ``run_for`` seconds
        (a small file is done before the page that started it is shown)."""
        slugs = [s.strip() for s in list_slugs if s.strip()] or [DEFAULT_SLUG]
        if len(slugs) > MAX_LISTS:
            raise ValidationError(f"at most {MAX_LISTS} lists", field="list")
        check_slugs(slugs)
        async with self.db.transaction() as conn:
            record = await repository.get_import(conn, job_id)
            job = await jobs.get(conn, job_id)
            if record is None or job is None:
                raise NotFound("no such import")
            if record.columns is not None or record.hold_token is None or not job.status.open:
                raise Conflict("this import has already been started or has ended")
            if record.uploaded_at is None or record.header is None:
                raise Conflict("this import's file is still uploading")
            if roles is None:
                mapping = Mapping.guess(record.header)
            else:
                mapping = Mapping.of(record.header, [Role.parse(r, "columns") for r in roles])
            found = await repository.lists_by_slug(conn, slugs)
            unknown = sorted(set(slugs) - {f.slug for f in found})
            if unknown:
                raise ValidationError(
                    f"no list with the slug {', '.join(map(repr, unknown))}", field="list"
                )
            configured = await repository.configure(
                conn, job_id, mapping.to_json(), [f.id for f in found], mode, record.hold_token
            )
            released = await jobs.release(conn, job_id, record.hold_token)
            if not configured or released is None:
                raise Conflict("this import has already been started or has ended")
        log.info("import started", job_id=str(job_id), mode=mode.value, lists=slugs)
        if run_for > 0 and released is not None:
            await run_now(
                self.db,
                released,
                ImportJob(self.settings),
                budget_seconds=run_for,
                lease_seconds=self.settings.delivery.lease_seconds,
            )
        return await self.get(job_id)

    async def submit(
        self,
        filename: str,
        data: AsyncIterable[bytes],
        *,
        roles: Sequence[str] | None,
        list_slugs: Sequence[str],
        mode: Mode,
        created_by: uuid.UUID | None,
    ) -> ImportView:
        """Upload and start in one go (the API): a mapping or list refused after the
        upload cancels the import, file and all."""
        view = await self.upload(filename, data, created_by=created_by)
        try:
            return await self.start(view.job.id, roles=roles, list_slugs=list_slugs, mode=mode)
        except BaseException:
            await self._abandon(view.job.id, "not started: the mapping or a list was refused")
            raise

    async def cancel(self, job_id: uuid.UUID) -> ImportView:
        async with self.db.transaction() as conn:
            await jobs.cancel(conn, job_id, "Stopped: the rows imported so far are kept.")
        return await self.get(job_id)

    async def get(self, job_id: uuid.UUID) -> ImportView:
        async with self.db.connection() as conn:
            record = await repository.get_import(conn, job_id)
            job = await jobs.get(conn, job_id)
            if record is None or job is None:
                raise NotFound("no such import")
            lists = await repository.list_refs(conn, record.list_ids)
        return ImportView(job, record, lists)

    async def recent(self, limit: int = 20) -> list[ImportView]:
        """The newest imports: three queries whatever ``limit``."""
        async with self.db.connection() as conn:
            records = await repository.recent_imports(conn, limit)
            found = await jobs.get_many(conn, [r.job_id for r in records])
            refs = await repository.list_refs(conn, list({i for r in records for i in r.list_ids}))
        return [
            ImportView(found[r.job_id], r, [ref for ref in refs if ref.id in r.list_ids])
            for r in records
            if r.job_id in found
        ]

    async def lists(self) -> list[repository.ListRef]:
        async with self.db.connection() as conn:
            return await repository.all_lists(conn)

    async def errors(
        self, job_id: uuid.UUID, *, after_line: int = 0, limit: int = 1000
    ) -> list[repository.ErrorRow]:
        async with self.db.connection() as conn:
            if await repository.get_import(conn, job_id) is None:
                raise NotFound("no such import")
            return await repository.errors_page(conn, job_id, after_line, limit)

    async def error_report(self, job_id: uuid.UUID) -> AsyncIterator[str]:
        """The whole error report as CSV (``line,email,error``), in line order, read a
        page at a time and given in pieces of about :data:`REPORT_PIECE` characters."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(("line", "email", "error"))
        after = 0
        while True:
            page = await self.errors(job_id, after_line=after, limit=ERRORS_PAGE)
            for row in page:
                writer.writerow((row.line, row.email or "", row.error))
                if buffer.tell() > REPORT_PIECE:
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
            if len(page) < ERRORS_PAGE:
                break
            after = page[-1].line
        yield buffer.getvalue()


class Readable(Protocol):
    """An uploaded file as the web frameworks give it."""

    async def read(self, size: int = -1) -> bytes: ...


async def pieces(source: Readable, size: int = CHUNK_BYTES) -> AsyncIterator[bytes]:
    """``source`` read ``size`` bytes at a time, for :meth:`ImportService.upload`."""
    while piece := await source.read(size):
        yield piece


def check_slugs(slugs: Sequence[str]) -> None:
    """A list slug that cannot exist is refused as unknown before any query."""
    bad = [s for s in slugs if not is_slug(s)]
    if bad:
        shown = ", ".join(repr(s[:60]) for s in bad[:5])
        raise ValidationError(f"no list with the slug {shown}", field="list")


def _any_role(index: int) -> Role:
    return Role.EMAIL if index == 0 else Role.IGNORE


def _header(first: bytes) -> tuple[list[str], str]:
    """The header row of a file that starts with ``first`` and its delimiter."""
    for record in records([first]):
        if record.data is None or not record.balanced:
            break
        delimiter = sniff_delimiter(record.data)
        try:
            header = [cell.strip() for cell in fields(record, delimiter)]
        except ValueError as exc:
            raise ValidationError(f"the header row cannot be read: {exc}", field="file") from None
        if any("\x00" in cell for cell in header):
            raise ValidationError("the header row holds a NUL character", field="file")
        if any(header):
            return header, delimiter
        break
    raise ValidationError(
        "the file has no header row: its first line must name the columns (email, name, …)",
        field="file",
    )
