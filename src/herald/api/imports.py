"""``/api/v1/imports`` and ``/api/v1/exports``: CSV imports (upload, status, error report)
and streamed exports. Each handler: parse → one service call → response; the services
are ``imports.service`` and ``imports.export``."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from pydantic import BaseModel, Field
from starlette.responses import Response, StreamingResponse

from herald.api import pagination
from herald.api.access import Access, operation
from herald.api.idempotency import ApiRoute
from herald.api.pagination import DEFAULT_LIMIT, CursorParam, Limit, Page
from herald.auth.service import Principal
from herald.auth.web import writer
from herald.core.errors import ValidationError
from herald.imports.domain import Mode
from herald.imports.export import ExportFormat, ExportService
from herald.imports.service import ImportService, ImportView, pieces
from herald.web.state import AppState, State

KIND = "import-errors"
router = APIRouter(prefix="/api/v1", tags=["imports"], route_class=ApiRoute)


class ImportCounts(BaseModel):
    imported: int = Field(description="New subscribers.")
    updated: int = Field(description="Known subscribers updated (name, attributes, lists).")
    skipped: int = Field(description="Suppressed or unsubscribed from everything: left alone.")
    rejected: int = Field(description="Rows refused; each is in the error report.")


class ImportStatus(BaseModel):
    id: uuid.UUID
    state: Literal["uploading", "mapping", "queued", "running", "done", "failed", "cancelled"]
    filename: str
    size: int = Field(description="Bytes uploaded.")
    mode: Literal["confirmed", "opt_in"]
    lists: list[str] = Field(description="Slugs of the lists the rows join.")
    counts: ImportCounts
    rows_seen: int = Field(description="Rows read so far (written, skipped or rejected).")
    rows_estimate: int | None = Field(description="Lines in the file, less the header.")
    message: str | None = Field(description="The outcome once finished, or why it failed.")
    created_at: datetime
    finished_at: datetime | None


class ImportError(BaseModel):
    line: int = Field(description="Line of the file the row starts on (the header is 1).")
    email: str | None
    error: str


def status_json(view: ImportView) -> ImportStatus:
    job, record, counts = view.job, view.record, view.record.counts
    return ImportStatus(
        id=job.id,
        state=view.state,
        filename=record.filename,
        size=record.size,
        mode=record.mode.value,
        lists=[ref.slug for ref in view.lists],
        counts=ImportCounts(
            imported=counts.imported,
            updated=counts.updated,
            skipped=counts.skipped,
            rejected=counts.rejected,
        ),
        rows_seen=job.done + job.skipped,
        rows_estimate=job.total,
        message=job.message,
        created_at=job.created_at,
        finished_at=job.finished_at,
    )


def _with_200(declared: dict[str, Any], success: dict[str, Any]) -> dict[str, Any]:
    """``operation(...)``'s arguments with the success response documented too."""
    return {**declared, "responses": {200: success, **declared["responses"]}}


def _service(state: AppState) -> ImportService:
    return ImportService(state.db, state.settings)


def _roles(raw: str | None) -> list[str] | None:
    if raw is None or not raw.strip():
        return None
    try:
        roles = json.loads(raw)
    except ValueError:
        roles = None
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise ValidationError(
            'columns must be a JSON array of roles, one per column: ["email", "name", '
            '"attribute", "ignore"]',
            field="columns",
        )
    return roles


@router.post(
    "/imports",
    status_code=202,
    response_model=ImportStatus,
    **operation(Access.WRITE, errors=(400, 404, 409, 413, 415), idempotent=True),
)
async def create_import(
    state: State,
    response: Response,
    file: Annotated[UploadFile, File(description="A UTF-8 CSV file with a header row.")],
    who: Annotated[Principal, Depends(writer)],
    list_: Annotated[
        list[str] | None,
        Form(alias="list", description="Slugs of the lists to join (repeat); default `default`."),
    ] = None,
    mode: Annotated[
        str,
        Form(
            description="`confirmed` (you attest consent: confirmed, no email) or `opt-in` "
            "(each new member gets a confirmation email)."
        ),
    ] = "opt-in",
    columns: Annotated[
        str | None,
        Form(
            description="JSON array: the role of each column (`email`, `name`, `attribute`, "
            "`ignore`). Default: `email`, `name` by their header, every other an attribute."
        ),
    ] = None,
) -> ImportStatus:
    """Upload a CSV and start importing it in the background; follow it at ``Location``.
    Its rows are read by the workers, 5,000 at a time."""
    view = await _service(state).submit(
        file.filename or "upload.csv",
        pieces(file),
        roles=_roles(columns),
        list_slugs=list_ or [],
        mode=Mode.parse(mode),
        created_by=who.user_id,
    )
    response.headers["Location"] = f"{router.prefix}/imports/{view.job.id}"
    return status_json(view)


@router.get(
    "/imports/{import_id}",
    response_model=ImportStatus,
    **operation(Access.READ, errors=(400, 404)),
)
async def get_import(import_id: uuid.UUID, state: State) -> ImportStatus:
    """An import's state and counts (they grow as its batches commit)."""
    return status_json(await _service(state).get(import_id))


@router.get(
    "/imports/{import_id}/errors",
    response_model=Page[ImportError],
    **_with_200(
        operation(Access.READ, errors=(400, 404)),
        {"content": {"text/csv": {"schema": {"type": "string"}}}},
    ),
)
async def import_errors(
    import_id: uuid.UUID,
    state: State,
    format: Annotated[
        Literal["json", "csv"],
        Query(description="`json`: pages of errors; `csv`: the whole report as one download."),
    ] = "json",
    limit: Limit = DEFAULT_LIMIT,
    cursor: CursorParam = None,
) -> Response | Page[ImportError]:
    """The rejected rows, in line order: line, the address as written, and why."""
    service = _service(state)
    if format == "csv":
        await service.get(import_id)  # 404 before the download starts
        return StreamingResponse(
            service.error_report(import_id),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="import-{import_id}-errors.csv"'
            },
        )
    after = pagination.decode_id(state.settings, KIND, cursor, str(import_id)) if cursor else 0
    rows = await service.errors(import_id, after_line=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1].line if more and rows else None
    return Page[ImportError](
        items=[ImportError(line=r.line, email=r.email, error=r.error) for r in rows],
        next_cursor=(
            pagination.encode_id(state.settings, KIND, last, str(import_id)) if last else None
        ),
    )


@router.get(
    "/exports/subscribers",
    response_class=StreamingResponse,
    **_with_200(
        operation(Access.READ, errors=(400, 404)),
        {
            "description": "The subscribers, streamed.",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
        },
    ),
)
async def export_subscribers(
    state: State,
    list_slug: Annotated[
        str | None,
        Query(alias="list", max_length=60, description="Only this list's members."),
    ] = None,
    format: Annotated[
        Literal["csv", "json"],
        Query(description="`csv` (an `attributes` column of JSON) or `json` (JSON Lines)."),
    ] = "csv",
    segment: Annotated[
        uuid.UUID | None, Query(description="Only the subscribers this saved segment selects.")
    ] = None,
) -> StreamingResponse:
    """Every subscriber (or a list's members, or a segment's), oldest first, streamed in
    pages of 5,000:
    ``email, name, status, created_at, confirmed_at, attributes``; with ``list``, the status
    and confirmation are the membership's."""
    export = await ExportService(state.db).prepare(
        list_slug=list_slug, format=ExportFormat.parse(format), segment_id=segment
    )
    return StreamingResponse(
        export.chunks(),
        media_type=export.format.media_type,
        headers={"Content-Disposition": f'attachment; filename="{export.filename}"'},
    )
