"""The issue pages: drafts, editing, previews, test sends, publishing, schedules, results.

Every action posts a form with ``csrf_token`` and answers 303 back to the issue
page with a flash; a refused state change (publishing twice, cancelling a schedule
that is not there) is an error flash, not an error page. The issue page follows
delivery live through ``/admin/issues/{id}/events`` (server-sent events, see
``herald.issues.progress``).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response, StreamingResponse

from herald.admin.issue_forms import IssueForm, parse_schedule
from herald.auth.web import CurrentSession, auth_service, require_session
from herald.core.errors import Conflict, Unavailable, ValidationError
from herald.delivery.domain import DeliveryStatus
from herald.issues.domain import Issue
from herald.issues.progress import RETRY_MS, ProgressHub, progress_stream
from herald.issues.sandbox import LIMITS_HELP
from herald.issues.service import STATUSES, IssueService
from herald.issues.views import GMAIL_CLIP_BYTES, IssueViews
from herald.web import csrf, flash
from herald.web.cookies import SESSION_COOKIE
from herald.web.errors import FormError, form_errors
from herald.web.forms import read_form
from herald.web.pages import page
from herald.web.state import AppState, State

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_session)])

# The email's own inline styles, its images, and nothing that runs or posts: ``sandbox``
# gives the page an opaque origin (no cookies, no scripts, no forms), links still open.
PREVIEW_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src * data:; frame-ancestors 'none'; "
    "form-action 'none'; sandbox allow-popups allow-popups-to-escape-sandbox"
)
PREVIEW_EMAIL = "preview@example.com"
DELIVERY_ROWS = 100
# How often an open progress stream checks that its session still exists (logout, expiry).
SESSION_RECHECK_SECONDS = 2.0


def _service(state: AppState) -> IssueService:
    return IssueService(state.db, state.settings)


def _views(state: AppState) -> IssueViews:
    return IssueViews(state.db, state.settings)


def _issue_url(issue_id: uuid.UUID) -> str:
    return f"/admin/issues/{issue_id}"


async def _form(request: Request, state: AppState) -> dict[str, str]:
    form = await read_form(request, max_fields=20)
    csrf.check(request, state.settings, form.get(csrf.FORM_FIELD))
    return form


# -- list, create, edit ---------------------------------------------------------------


@router.get("/issues", response_class=HTMLResponse)
async def list_issues(request: Request, state: State) -> Response:
    return page(request, "admin/issues.html", issues=await _service(state).recent(100))


@router.get("/issues/new", response_class=HTMLResponse)
async def new_issue_form(request: Request) -> Response:
    return _form_page(request, IssueForm(), None, None)


def _form_page(
    request: Request, form: IssueForm, issue: Issue | None, error: str | None, status: int = 200
) -> Response:
    return page(
        request,
        "admin/issue_form.html",
        status_code=status,
        form=form,
        issue=issue,
        error=error,
        limits=LIMITS_HELP,
        clip_kb=GMAIL_CLIP_BYTES // 1024,
    )


@router.post("/issues/new")
async def create_issue(request: Request, state: State, session: CurrentSession) -> Response:
    form = IssueForm.from_form(await _form(request, state))
    try:
        issue_id = await _service(state).create_draft(form.content(), session.user_id)
    except ValidationError as exc:
        return _form_page(request, form, None, exc.message, 400)
    return flash.redirect(_issue_url(issue_id), state.settings, "The draft has been saved.")


@router.get("/issues/{issue_id}/edit", response_class=HTMLResponse)
async def edit_issue_form(request: Request, state: State, issue_id: uuid.UUID) -> Response:
    issue = await _service(state).get(issue_id)
    if not issue.status.editable:
        message = f"This issue is {issue.status.value}: it can no longer be changed."
        raise FormError(message, redirect_to=_issue_url(issue_id))
    return _form_page(request, IssueForm.from_issue(issue), issue, None)


@router.post("/issues/{issue_id}/edit")
async def update_issue(request: Request, state: State, issue_id: uuid.UUID) -> Response:
    form = IssueForm.from_form(await _form(request, state))
    service = _service(state)
    with form_errors(_issue_url(issue_id), Conflict):
        try:
            await service.update(issue_id, form.content())
        except ValidationError as exc:  # the form again, with what was typed and why not
            issue = await service.get(issue_id)
            return _form_page(request, form, issue, exc.message, 400)
    return flash.redirect(_issue_url(issue_id), state.settings, "The issue has been saved.")


# -- the issue page and its previews ------------------------------------------------------


@router.get("/issues/{issue_id}", response_class=HTMLResponse)
async def show_issue(
    request: Request, state: State, issue_id: uuid.UUID, status: str | None = None
) -> Response:
    shown = DeliveryStatus(status) if status in STATUSES else None
    overview = await _views(state).overview(issue_id, shown, DELIVERY_ROWS)
    return page(
        request,
        "admin/issue.html",
        issue=overview.issue,
        progress=overview.progress,
        statuses=STATUSES,
        deliveries=overview.deliveries,
        shown_status=overview.shown_status,
        html_bytes=overview.html_bytes,
        clip_bytes=GMAIL_CLIP_BYTES,
    )


@router.get("/issues/{issue_id}/preview")
async def preview_issue(
    state: State, session: CurrentSession, issue_id: uuid.UUID, format: str = "html"
) -> Response:
    """The issue as a subscriber named like the admin would get it (inert unsubscribe link)."""
    if format not in {"html", "text"}:
        raise ValidationError("format must be html or text", field="format")
    preview = await _views(state).preview(issue_id, name=session.username, email=PREVIEW_EMAIL)
    headers = {"Cache-Control": "no-store"}
    if format == "text":
        return PlainTextResponse(preview.text, headers=headers)
    return HTMLResponse(
        preview.document(), headers={**headers, "Content-Security-Policy": PREVIEW_CSP}
    )


# -- actions ----------------------------------------------------------------------------


@router.post("/issues/{issue_id}/test")
async def send_test(
    request: Request, state: State, session: CurrentSession, issue_id: uuid.UUID
) -> Response:
    form = await _form(request, state)
    email = form.get("email", "").strip()
    with form_errors(_issue_url(issue_id), ValidationError):
        await _service(state).send_test(issue_id, email, name=session.username)
    message = f"A test email is on its way to {email}."
    return flash.redirect(_issue_url(issue_id), state.settings, message)


@router.post("/issues/{issue_id}/publish")
async def publish_issue(request: Request, state: State, issue_id: uuid.UUID) -> Response:
    await _form(request, state)
    with form_errors(_issue_url(issue_id), Conflict, ValidationError):
        await _service(state).publish(issue_id)
    message = "The issue is published: it is being queued for every confirmed subscriber."
    return flash.redirect(_issue_url(issue_id), state.settings, message)


@router.post("/issues/{issue_id}/schedule")
async def schedule_issue(request: Request, state: State, issue_id: uuid.UUID) -> Response:
    form = await _form(request, state)
    with form_errors(_issue_url(issue_id), ValidationError, Conflict):
        at = parse_schedule(form.get("scheduled_at", ""), form.get("utc_offset", ""))
        await _service(state).schedule(issue_id, at)
    when = f"{at.isoformat(timespec='minutes')} ({at.astimezone(UTC):%Y-%m-%d %H:%M} UTC)"
    message = f"The issue is scheduled for {when}."
    return flash.redirect(_issue_url(issue_id), state.settings, message)


@router.post("/issues/{issue_id}/cancel")
async def cancel_schedule(request: Request, state: State, issue_id: uuid.UUID) -> Response:
    await _form(request, state)
    with form_errors(_issue_url(issue_id), Conflict):
        await _service(state).cancel_schedule(issue_id)
    message = "The schedule has been cancelled: the issue is a draft again."
    return flash.redirect(_issue_url(issue_id), state.settings, message)


@router.post("/issues/{issue_id}/retry-failed")
async def retry_failed(request: Request, state: State, issue_id: uuid.UUID) -> Response:
    await _form(request, state)
    retried = await _service(state).retry_failed(issue_id)
    if retried == 0:
        raise FormError(
            "There are no failed deliveries to retry.", redirect_to=_issue_url(issue_id)
        )
    noun = "delivery" if retried == 1 else "deliveries"
    message = f"{retried} failed {noun} queued again."
    return flash.redirect(_issue_url(issue_id), state.settings, message)


# -- live progress ----------------------------------------------------------------------


@router.get("/issues/{issue_id}/events")
async def issue_events(request: Request, state: State, issue_id: uuid.UUID) -> Response:
    """``text/event-stream``: ``event: progress`` with ``Progress.as_json()``; ends at ``sent``."""
    service = _service(state)
    await service.get(issue_id)  # 404 before the stream starts
    hub = state.find(ProgressHub)
    if hub is None or hub.closed:
        raise Unavailable("live progress is not available while the server stops")
    if state.draining:
        # A stream that ends at once, asking the browser to come back in RETRY_MS: by
        # then the load balancer sends it to a process that is not stopping (an error
        # status would make EventSource give up for good).
        return StreamingResponse(
            iter([f"retry: {RETRY_MS}\n\n"]),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store"},
        )

    token = request.cookies.get(SESSION_COOKIE, "")
    checked = [time.monotonic()]

    async def should_stop() -> bool:
        if state.draining or await request.is_disconnected():
            return True
        if time.monotonic() - checked[0] < SESSION_RECHECK_SECONDS:
            return False
        checked[0] = time.monotonic()
        # Logged out (in any process) or expired: the stream ends with the session.
        return await auth_service(state).resolve_session(token) is None

    stream = progress_stream(
        issue_id, hub=hub, load=lambda: service.progress(issue_id), should_stop=should_stop
    )
    return StreamingResponse(
        stream,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
