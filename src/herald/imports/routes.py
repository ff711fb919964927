"""The admin's import and export pages.

``/admin/subscribers/import``: upload a CSV (multipart, up to :data:`UPLOAD_MAX_BYTES`,
spooled by the form parser to a temporary file and copied into ``job_files`` a chunk at
a time), then, on the import's page, the mapping step (the header row, a role per
column, the lists, the mode; ``confirmed`` asks for an attestation), then the same page
follows the job live (``jobs.js`` over ``/admin/live``) and offers the error report.
``/admin/subscribers/export``: the subscriber page's current filter, streamed.
Each handler: parse → one service call → response.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse

from herald.auth.web import CurrentSession, require_session
from herald.core.errors import Conflict, ValidationError
from herald.imports.domain import Mapping, Mode, Role, attribute_key
from herald.imports.export import ExportFormat, ExportService
from herald.imports.repository import ExportFilter
from herald.imports.service import ImportService, pieces
from herald.subscriptions.listing import ListFilter
from herald.web import csrf, flash
from herald.web.errors import form_errors
from herald.web.pages import page
from herald.web.state import State

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_session)])

UPLOAD_MAX_BYTES = 512 * 1024 * 1024
IMPORTS = "/admin/subscribers/import"
INLINE_SECONDS = 2.0
ROLE_LABELS = {
    Role.EMAIL: "Email",
    Role.NAME: "Name",
    Role.ATTRIBUTE: "Attribute",
    Role.IGNORE: "Ignore",
}


def _service(state: State) -> ImportService:
    return ImportService(state.db, state.settings)


@router.get("/subscribers/import", response_class=HTMLResponse)
async def imports_page(request: Request, state: State) -> Response:
    imports = await _service(state).recent()
    return page(request, "imports/imports.html", imports=imports, max_mib=UPLOAD_MAX_BYTES >> 20)


@router.post("/subscribers/import")
async def upload(request: Request, state: State, session: CurrentSession) -> Response:
    async with request.form(max_files=1, max_fields=5) as form:
        csrf.check(request, state.settings, form.get(csrf.FORM_FIELD))
        file = form.get("file")
        with form_errors(IMPORTS, ValidationError, Conflict):
            if not isinstance(file, UploadFile) or not file.filename:
                raise ValidationError("choose a CSV file to upload", field="file")
            view = await _service(state).upload(
                file.filename, pieces(file), created_by=session.user_id
            )
    return flash.redirect(f"{IMPORTS}/{view.job.id}", state.settings)


@router.get("/subscribers/import/{import_id}", response_class=HTMLResponse)
async def import_page(request: Request, state: State, import_id: uuid.UUID) -> Response:
    service = _service(state)
    view = await service.get(import_id)
    header = view.record.header or []
    guessed = _guess(header)
    lists = await service.lists() if view.state == "mapping" else []
    return page(
        request,
        "imports/import.html",
        view=view,
        job=view.job,
        header=header,
        guessed=guessed,
        keys=[attribute_key(cell) for cell in header],
        roles=ROLE_LABELS,
        lists=lists,
    )


def _guess(header: list[str]) -> list[Role]:
    try:
        return [c.role for c in Mapping.guess(header).columns]
    except ValidationError:
        return [Role.ATTRIBUTE for _ in header]


@router.post("/subscribers/import/{import_id}/start")
async def start(request: Request, state: State, import_id: uuid.UUID) -> Response:
    form = await request.form(max_files=0, max_fields=400)
    csrf.check(request, state.settings, form.get(csrf.FORM_FIELD))
    here = f"{IMPORTS}/{import_id}"
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    with form_errors(here, ValidationError, Conflict):
        mode = Mode.parse(fields.get("mode", ""))
        if mode is Mode.CONFIRMED and fields.get("attest") != "yes":
            raise ValidationError(
                "to import confirmed members, confirm that they agreed to receive your emails",
                field="attest",
            )
        count = sum(1 for k in fields if k.startswith("role_"))
        roles = [fields.get(f"role_{i}", "") for i in range(count)]
        slugs = [v for v in form.getlist("list") if isinstance(v, str)]
        if not slugs:
            raise ValidationError("choose at least one list", field="list")
        view = await _service(state).start(
            import_id, roles=roles, list_slugs=slugs, mode=mode, run_for=INLINE_SECONDS
        )
    message = view.job.message if not view.job.status.open else None
    return flash.redirect(here, state.settings, message)


@router.post("/subscribers/import/{import_id}/cancel")
async def cancel(request: Request, state: State, import_id: uuid.UUID) -> Response:
    form = await request.form(max_files=0, max_fields=5)
    csrf.check(request, state.settings, form.get(csrf.FORM_FIELD))
    view = await _service(state).cancel(import_id)
    return flash.redirect(f"{IMPORTS}/{import_id}", state.settings, view.job.message)


@router.get("/subscribers/import/{import_id}/errors.csv")
async def error_report(state: State, import_id: uuid.UUID) -> Response:
    service = _service(state)
    view = await service.get(import_id)
    name = view.record.filename.rsplit(".", 1)[0] or "import"
    return StreamingResponse(
        service.error_report(import_id),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{_safe(name)}-errors.csv"'},
    )


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:80] or "import"


@router.get("/subscribers/export")
async def export(
    state: State,
    status: str = "",
    q: str = "",
    match: str = "",
    format: str = "csv",
) -> Response:
    """The subscribers page's current filter (status tab and search), streamed."""
    with form_errors("/admin/subscribers", ValidationError):
        where = ListFilter.parse(status=status, q=q, match=match)
        chosen = ExportFormat.parse(format)
    narrowed = ExportFilter(
        status=where.tab.status.value if where.tab.status else None,
        contains=where.contains,
        prefix_pattern=where.prefix_pattern,
    )
    prepared = await ExportService(state.db).prepare(list_slug=None, format=chosen, where=narrowed)
    return StreamingResponse(
        prepared.chunks(),
        media_type=chosen.media_type,
        headers={"Content-Disposition": f'attachment; filename="{prepared.filename}"'},
    )
