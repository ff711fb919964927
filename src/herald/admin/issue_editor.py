"""The issue editor: new and edit forms, and the live preview of unsaved content.

The editor posts a plain form (it saves without JavaScript). Its Preview button posts the
same form into the page's preview frame (``POST /admin/issues/preview?format=html``): the
email as a document of its own with the preview's sandboxing policy, never inserted into
the admin page; the form's ``part`` (``html``/``text``) and ``scheme`` (``light``/``dark``)
choose what the frame shows, its ``width`` (desktop 600 px, phone 375 px) sets the frame's
width in CSS. ``web/static/editor.js`` does the same while the editor types or toggles
(debounced), and also posts ``format=json``: the text part, the inbox line, the HTML
part's size against Gmail's clipping limit, or the template error. ``issue_id`` (an
edited, saved issue) gives the preview the links a test send of it has.
``admin/issues.py`` puts these routes ahead of its own, so that ``/admin/issues/new`` is
never read as an issue id.
"""

from __future__ import annotations

import uuid
from html import escape

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from herald.admin.issue_forms import IssueForm
from herald.auth.web import CurrentSession, require_session
from herald.core.errors import Conflict, ValidationError
from herald.issues.domain import MAX_PREHEADER_LENGTH, Issue
from herald.issues.previews import GMAIL_CLIP_BYTES, IssuePreview, parse_part, parse_scheme
from herald.issues.rendering import off_loop
from herald.issues.sandbox import LIMITS_HELP
from herald.issues.service import IssueService
from herald.issues.targeting import MAX_CHOICES, TargetOptions
from herald.issues.views import IssueViews
from herald.web import csrf, flash
from herald.web.errors import FormError, form_errors
from herald.web.forms import read_form, read_form_multi
from herald.web.pages import page
from herald.web.state import AppState, State

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_session)])

# The email's own inline styles, its images, and nothing that runs or posts: ``sandbox``
# gives the page an opaque origin (no cookies, no scripts, no forms), links still open.
PREVIEW_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src * data:; frame-ancestors 'none'; "
    "form-action 'none'; sandbox allow-popups allow-popups-to-escape-sandbox"
)
# The editor's live preview is framed by the editor page itself (same origin only).
FRAMED_PREVIEW_CSP = PREVIEW_CSP.replace("frame-ancestors 'none'", "frame-ancestors 'self'")


def issue_service(state: AppState) -> IssueService:
    return IssueService(state.db, state.settings)


def issue_views(state: AppState) -> IssueViews:
    return IssueViews(state.db, state.settings)


def issue_url(issue_id: uuid.UUID) -> str:
    return f"/admin/issues/{issue_id}"


# The editor's "Send to" checkboxes are one field each (MAX_CHOICES lists at most).
MAX_FIELDS = 20 + MAX_CHOICES


async def read_issue_form(request: Request, state: AppState) -> dict[str, str]:
    form = await read_form(request, max_fields=MAX_FIELDS)
    csrf.check(request, state.settings, form.get(csrf.FORM_FIELD))
    return form


async def read_editor_form(request: Request, state: AppState) -> IssueForm:
    multi = await read_form_multi(request, max_fields=MAX_FIELDS)
    fields = {key: values[-1] for key, values in multi.items()}
    csrf.check(request, state.settings, fields.get(csrf.FORM_FIELD))
    return IssueForm.from_form(fields, multi.get("lists", []))


@router.get("/issues/new", response_class=HTMLResponse)
async def new_issue_form(request: Request, state: State) -> Response:
    _, options = await issue_views(state).editor()
    return _form_page(request, IssueForm(), None, options)


def _form_page(
    request: Request,
    form: IssueForm,
    issue: Issue | None,
    options: TargetOptions,
    error: ValidationError | None = None,
) -> Response:
    return page(
        request,
        "admin/issue_form.html",
        status_code=400 if error else 200,
        form=form,
        issue=issue,
        options=options,
        error=error.message if error else None,
        error_field=error.field if error else None,
        limits=LIMITS_HELP,
        clip_kb=GMAIL_CLIP_BYTES // 1024,
        clip_bytes=GMAIL_CLIP_BYTES,
        max_preheader=MAX_PREHEADER_LENGTH,
    )


@router.post("/issues/new")
async def create_issue(request: Request, state: State, session: CurrentSession) -> Response:
    form = await read_editor_form(request, state)
    try:
        content = await off_loop(form.content)  # Markdown and HTML→text: CPU, off the loop
        issue_id = await issue_service(state).create_draft(
            content, session.user_id, form.target(), track=bool(form.track())
        )
    except ValidationError as exc:
        _, options = await issue_views(state).editor()
        return _form_page(request, form, None, options, exc)
    return flash.redirect(issue_url(issue_id), state.settings, "The draft has been saved.")


@router.get("/issues/{issue_id}/edit", response_class=HTMLResponse)
async def edit_issue_form(request: Request, state: State, issue_id: uuid.UUID) -> Response:
    issue, options = await issue_views(state).editor(issue_id)
    assert issue is not None
    if not issue.status.editable:
        message = f"This issue is {issue.status.value}: it can no longer be changed."
        raise FormError(message, redirect_to=issue_url(issue_id))
    return _form_page(request, IssueForm.from_issue(issue), issue, options)


@router.post("/issues/{issue_id}/edit")
async def update_issue(request: Request, state: State, issue_id: uuid.UUID) -> Response:
    form = await read_editor_form(request, state)
    service = issue_service(state)
    with form_errors(issue_url(issue_id), Conflict):
        try:
            await service.update(
                issue_id, await off_loop(form.content), form.target(), track=form.track()
            )
        except ValidationError as exc:  # the form again, with what was typed and why not
            issue, options = await issue_views(state).editor(issue_id)
            return _form_page(request, form, issue, options, exc)
    return flash.redirect(issue_url(issue_id), state.settings, "The issue has been saved.")


@router.post("/issues/preview")
async def preview_draft(
    request: Request, state: State, format: str = "html", issue_id: uuid.UUID | None = None
) -> Response:
    """The editor's unsaved content rendered for the sample subscriber (time-boxed).

    ``format=json``: the text part, the inbox line, the HTML part's size and whether Gmail
    would clip it (a template error is a 400 naming it, as JSON). ``format=html``: the
    form's ``part`` in its ``scheme`` as a sandboxed document for the editor's preview
    frame (an error is a 400 document saying why, so the frame shows it)."""
    if format not in {"html", "json"}:
        raise ValidationError("format must be html or json", field="format")
    fields = await read_issue_form(request, state)
    part, scheme = parse_part(fields.get("part")), parse_scheme(fields.get("scheme"))
    form = IssueForm.from_form(fields)
    try:
        content = await off_loop(form.preview_content)
        preview = await issue_views(state).preview_content(content, issue_id)
    except ValidationError as exc:
        if format == "json":
            raise
        preview = IssuePreview(
            "Cannot render", f"<p><strong>{escape(exc.message)}</strong></p>", ""
        )
        return _framed(preview, status=400)
    if format == "json":
        return JSONResponse(preview.as_json(), headers={"Cache-Control": "no-store"})
    return _framed(preview, scheme=scheme, part=part)


def _framed(
    preview: IssuePreview, status: int = 200, *, scheme: str = "", part: str = "html"
) -> Response:
    headers = {
        "Cache-Control": "no-store",
        "Content-Security-Policy": FRAMED_PREVIEW_CSP,
        "X-Frame-Options": "SAMEORIGIN",
    }
    return HTMLResponse(preview.document(scheme, part), status_code=status, headers=headers)
