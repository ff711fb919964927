"""``/admin/settings/branding``: the newsletter's name, accent colour, footer address and
logo, over the configured defaults (``HERALD_NEWSLETTER__*``), with a preview of an email in
them. Admins only.

The accent has a colour picker and a hex field; without JavaScript (which keeps them in
step) the field wins when it was edited, else the picker. A refused value shows the page
again, 400, with what was typed and why. The logo is a multipart upload: its body limit
(``LOGO_FORM_MAX_BYTES``, set by the composition root) refuses a huge file before it is
read, and at most :data:`MAX_LOGO_BYTES` + 1 bytes of the file are read from the spool.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from fastapi import APIRouter, Depends
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from herald.admin.design_previews import DesignPreviews
from herald.admin.issue_editor import FRAMED_PREVIEW_CSP
from herald.auth.web import AdminSession, require_admin
from herald.core.errors import UnsupportedMediaType, ValidationError
from herald.design.domain import Field
from herald.design.logos import MAX_LOGO_BYTES, MAX_SIDE, MIN_SIDE
from herald.design.service import DesignService
from herald.web import csrf, flash
from herald.web.errors import form_errors
from herald.web.forms import read_form
from herald.web.pages import page
from herald.web.state import AppState, State

router = APIRouter(
    prefix="/admin/settings/branding", tags=["admin"], dependencies=[Depends(require_admin)]
)

PAGE = "/admin/settings/branding"
# The multipart overhead (boundaries, the part's headers, the CSRF field) over the logo.
LOGO_FORM_MAX_BYTES = MAX_LOGO_BYTES + 16 * 1024
SAVED = "The branding has been saved: emails use it from now on."
UNCHANGED = "Nothing changed."
RESET = {
    Field.NAME: "The name is the configured default again.",
    Field.ACCENT: "The accent colour is the configured default again.",
    Field.FOOTER_ADDRESS: "The footer address is the configured default again.",
    Field.LOGO: "The logo is the configured default again.",
}
FRAME_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": FRAMED_PREVIEW_CSP,
    "X-Frame-Options": "SAMEORIGIN",
}


@dataclass(frozen=True)
class BrandingForm:
    name: str
    accent: str
    footer_address: str

    @classmethod
    def from_form(cls, form: dict[str, str]) -> BrandingForm:
        typed, picked = form.get("accent", ""), form.get("accent_picker", "")
        shown = form.get("accent_shown", "")
        accent = picked if typed.strip().lower() == shown.lower() and picked else typed
        return cls(form.get("name", ""), accent, form.get("footer_address", ""))


def design_service(state: AppState) -> DesignService:
    return DesignService(state.db, state.settings)


async def _page(
    request: Request,
    state: AppState,
    *,
    form: BrandingForm | None = None,
    error: str | None = None,
    logo_error: str | None = None,
    status: int = 200,
) -> Response:
    view = await design_service(state).branding()
    shown = form or BrandingForm(
        view.effective.name, view.effective.accent, view.effective.footer_address
    )
    return page(
        request,
        "admin/settings_branding.html",
        status_code=status,
        view=view,
        form=shown,
        error=error,
        logo_error=logo_error,
        max_logo_kb=MAX_LOGO_BYTES // 1024,
        min_side=MIN_SIDE,
        max_side=MAX_SIDE,
    )


@router.get("", response_class=HTMLResponse)
async def branding(request: Request, state: State) -> Response:
    return await _page(request, state)


@router.post("")
async def save(request: Request, state: State, session: AdminSession) -> Response:
    fields = await read_form(request, max_fields=10)
    csrf.check(request, state.settings, fields.get(csrf.FORM_FIELD))
    form = BrandingForm.from_form(fields)
    try:
        changed = await design_service(state).save_branding(
            name=form.name,
            accent=form.accent,
            footer_address=form.footer_address,
            user_id=session.user_id,
        )
    except ValidationError as exc:
        return await _page(request, state, form=form, error=exc.message, status=400)
    return flash.redirect(PAGE, state.settings, SAVED if changed else UNCHANGED)


@router.post("/reset")
async def reset(request: Request, state: State, session: AdminSession) -> Response:
    form = await read_form(request, max_fields=10)
    csrf.check(request, state.settings, form.get(csrf.FORM_FIELD))
    with form_errors(PAGE, ValidationError):
        field = Field.parse(form.get("field", ""))
        await design_service(state).reset(field, session.user_id)
    return flash.redirect(PAGE, state.settings, RESET[field])


@router.post("/logo")
async def upload_logo(request: Request, state: State, session: AdminSession) -> Response:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "multipart/form-data":
        raise UnsupportedMediaType("upload the logo as multipart/form-data")
    async with request.form(max_files=1, max_fields=5, max_part_size=4096) as form:
        csrf.check(request, state.settings, form.get(csrf.FORM_FIELD))
        upload = form.get("logo")
        data = await upload.read(MAX_LOGO_BYTES + 1) if isinstance(upload, UploadFile) else b""
    try:
        await design_service(state).upload_logo(data, session.user_id)
    except ValidationError as exc:
        return await _page(request, state, logo_error=exc.message, status=400)
    return flash.redirect(PAGE, state.settings, "The logo has been uploaded: emails use it now.")


@router.post("/logo/remove")
async def remove_logo(request: Request, state: State, session: AdminSession) -> Response:
    form = await read_form(request, max_fields=5)
    csrf.check(request, state.settings, form.get(csrf.FORM_FIELD))
    await design_service(state).remove_logo(session.user_id)
    return flash.redirect(PAGE, state.settings, "Emails show the newsletter's name, no logo.")


@router.get("/preview", response_class=HTMLResponse)
async def preview(state: State) -> Response:
    """The sample email in the saved branding and active layout, for the page's frame."""
    html = await DesignPreviews(state.db, state.settings).current()
    return HTMLResponse(html, headers=FRAME_HEADERS)


@router.post("/preview", response_class=HTMLResponse)
async def preview_unsaved(request: Request, state: State) -> Response:
    """The sample email with the form's unsaved values (a 400 document naming a bad one)."""
    fields = await read_form(request, max_fields=10)
    csrf.check(request, state.settings, fields.get(csrf.FORM_FIELD))
    form = BrandingForm.from_form(fields)
    try:
        html = await DesignPreviews(state.db, state.settings).branding(
            name=form.name, accent=form.accent, footer_address=form.footer_address
        )
    except ValidationError as exc:
        return error_document(exc.message)
    return HTMLResponse(html, headers=FRAME_HEADERS)


def error_document(message: str) -> Response:
    html = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>Cannot preview'
        '</title></head><body><p style="font:16px/1.5 system-ui,sans-serif;color:#9e1f27;'
        f'padding:1rem"><strong>{escape(message)}</strong></p></body></html>\n'
    )
    return HTMLResponse(html, status_code=400, headers=FRAME_HEADERS)
