"""The issue pages: the list with results, the issue page, test sends, publishing (after a
confirmation stating the recipient count), schedules in a named time zone, retries.

Every action posts a form with ``csrf_token`` and answers 303 back to the issue
page with a flash; a refused state change (publishing twice, cancelling a schedule
that is not there) is an error flash, not an error page; a refused test send is the
page again (400) naming the address. The issue page follows delivery live through
``/admin/issues/{id}/events`` (server-sent events with rate and ETA, see
``herald.issues.progress``); its recipients are filtered by status and keyset-paged.
The editor and its live preview are ``admin/issue_editor.py``.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)

from herald.admin import issue_editor as editor
from herald.admin.issue_editor import (
    PREVIEW_CSP,
    issue_service,
    issue_url,
    issue_views,
    read_issue_form,
)
from herald.admin.issue_forms import (
    MAX_TEST_ADDRESSES,
    parse_addresses,
    parse_schedule,
    parse_zone,
    zone_names,
    zone_or_utc,
)
from herald.auth.web import CurrentSession, auth_service, require_session
from herald.core.errors import Conflict, Unavailable, ValidationError
from herald.delivery.domain import DeliveryStatus
from herald.engagement.service import Engagement
from herald.issues.previews import GMAIL_CLIP_BYTES, parse_scheme
from herald.issues.progress import RETRY_MS, ProgressHub, progress_stream
from herald.issues.proofs import Proofs
from herald.issues.service import STATUSES
from herald.web import cookies, flash
from herald.web.cookies import SESSION_COOKIE
from herald.web.errors import FormError, form_errors
from herald.web.pages import page
from herald.web.state import State

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_session)])

PREVIEW_EMAIL = "preview@example.com"
DELIVERY_ROWS = 50
ISSUE_ROWS = 50
# The time zone last chosen for a schedule: times are shown in it (a preference, not a secret).
ZONE_COOKIE = "herald_zone"
ZONE_COOKIE_SECONDS = 365 * 24 * 3600
# How often an open progress stream checks that its session still exists (logout, expiry).
SESSION_RECHECK_SECONDS = 2.0


# The editor's routes first: "/admin/issues/new" must not be read as an issue id.
router.routes.extend(editor.router.routes)


# -- the list -------------------------------------------------------------------------


@router.get("/issues", response_class=HTMLResponse)
async def list_issues(
    request: Request,
    state: State,
    before_at: datetime | None = None,
    before_id: uuid.UUID | None = None,
) -> Response:
    """Newest first, :data:`ISSUE_ROWS` a page; keyset cursor ``before_at`` + ``before_id``."""
    before = (before_at, before_id) if before_at is not None and before_id is not None else None
    listing = await issue_views(state).issue_list(ISSUE_ROWS, before)
    return page(
        request,
        "admin/issues.html",
        listing=listing,
        paged=before is not None,
        zone=zone_or_utc(request.cookies.get(ZONE_COOKIE)),
    )


# -- the issue page and its previews ------------------------------------------------------


@router.get("/issues/{issue_id}", response_class=HTMLResponse)
async def show_issue(
    request: Request,
    state: State,
    issue_id: uuid.UUID,
    status: str | None = None,
    before: int | None = None,
) -> Response:
    return await _issue_page(request, state, issue_id, status, before)


async def _issue_page(
    request: Request,
    state: State,
    issue_id: uuid.UUID,
    status: str | None = None,
    before: int | None = None,
    *,
    test_error: str | None = None,
    test_addresses: str = "",
) -> Response:
    shown = DeliveryStatus(status) if status in STATUSES else None
    overview = await issue_views(state).overview(issue_id, shown, DELIVERY_ROWS, before)
    engagement = await Engagement(state.db, state.settings).results(issue_id)  # tracked only
    return page(
        request,
        "admin/issue.html",
        status_code=400 if test_error else 200,
        overview=overview,
        issue=overview.issue,
        progress=overview.progress,
        statuses=STATUSES,
        deliveries=overview.deliveries,
        shown_status=overview.shown_status,
        html_bytes=overview.html_bytes,
        clip_bytes=GMAIL_CLIP_BYTES,
        zone=zone_or_utc(request.cookies.get(ZONE_COOKIE)),
        zone_names=zone_names(),
        test_error=test_error,
        test_addresses=test_addresses,
        max_test=MAX_TEST_ADDRESSES,
        engagement=engagement,
    )


@router.get("/issues/{issue_id}/preview")
async def preview_issue(
    state: State,
    session: CurrentSession,
    issue_id: uuid.UUID,
    format: str = "html",
    scheme: str | None = None,
) -> Response:
    """The issue as a subscriber named like the admin would get it (inert unsubscribe link):
    the email a test send is. ``scheme=light|dark`` shows the HTML in that colour scheme
    whatever the viewer's system prefers."""
    if format not in {"html", "text"}:
        raise ValidationError("format must be html or text", field="format")
    chosen = parse_scheme(scheme)
    preview = await issue_views(state).preview(issue_id, name=session.username, email=PREVIEW_EMAIL)
    headers = {"Cache-Control": "no-store"}
    if format == "text":
        return PlainTextResponse(preview.text, headers=headers)
    return HTMLResponse(
        preview.document(chosen), headers={**headers, "Content-Security-Policy": PREVIEW_CSP}
    )


# -- actions ----------------------------------------------------------------------------


@router.post("/issues/{issue_id}/test")
async def send_test(
    request: Request, state: State, session: CurrentSession, issue_id: uuid.UUID
) -> Response:
    """Up to MAX_TEST_ADDRESSES addresses; a bad one is a 400: the page again, naming it,
    with what was typed."""
    form = await read_issue_form(request, state)
    raw = form.get("email", "")
    try:
        sent = await Proofs(state.db, state.settings).send(
            issue_id, parse_addresses(raw), name=session.username
        )
    except ValidationError as exc:
        return await _issue_page(
            request, state, issue_id, test_error=exc.message, test_addresses=raw
        )
    if len(sent) == 1:
        message = f"A test email is on its way to {sent[0]}."
    else:
        message = f"{len(sent)} test emails are on their way: {', '.join(sent)}."
    return flash.redirect(issue_url(issue_id), state.settings, message)


@router.get("/issues/{issue_id}/publish", response_class=HTMLResponse)
async def confirm_publish(request: Request, state: State, issue_id: uuid.UUID) -> Response:
    """The confirmation step: who gets the issue if it is published now."""
    with form_errors(issue_url(issue_id), ValidationError):  # a segment that cannot be used
        issue, recipients = await issue_service(state).publish_preview(issue_id)
    if not issue.status.editable:
        message = f"This issue is {issue.status.value}: it cannot be published again."
        raise FormError(message, redirect_to=issue_url(issue_id))
    return page(request, "admin/issue_publish.html", issue=issue, recipients=recipients)


@router.post("/issues/{issue_id}/publish")
async def publish_issue(request: Request, state: State, issue_id: uuid.UUID) -> Response:
    await read_issue_form(request, state)
    with form_errors(issue_url(issue_id), Conflict, ValidationError):
        await issue_service(state).publish(issue_id)
    message = "The issue is published: it is being queued for the readers it targets."
    return flash.redirect(issue_url(issue_id), state.settings, message)


@router.post("/issues/{issue_id}/schedule")
async def schedule_issue(request: Request, state: State, issue_id: uuid.UUID) -> Response:
    """``scheduled_at`` (wall-clock) in the ``timezone`` chosen (or ``utc_offset``); the
    zone is remembered in a cookie, so times are shown back in it."""
    form = await read_issue_form(request, state)
    zone = form.get("timezone", "").strip()
    with form_errors(issue_url(issue_id), ValidationError, Conflict):
        at = parse_schedule(form.get("scheduled_at", ""), form.get("utc_offset", ""), zone)
        await issue_service(state).schedule(issue_id, at)
    in_utc = f"{at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    if zone:
        when = f"{at:%Y-%m-%d %H:%M} {zone} (UTC{at.isoformat()[-6:]}; {in_utc})"
    else:
        when = f"{at.isoformat(timespec='minutes')} ({in_utc})"
    response = flash.redirect(
        issue_url(issue_id), state.settings, f"The issue is scheduled for {when}."
    )
    if zone:
        cookies.set_cookie(
            response,
            state.settings,
            ZONE_COOKIE,
            str(parse_zone(zone)),
            max_age=ZONE_COOKIE_SECONDS,
        )
    return response


@router.post("/issues/{issue_id}/cancel")
async def cancel_schedule(request: Request, state: State, issue_id: uuid.UUID) -> Response:
    await read_issue_form(request, state)
    with form_errors(issue_url(issue_id), Conflict):
        await issue_service(state).cancel_schedule(issue_id)
    message = "The schedule has been cancelled: the issue is a draft again."
    return flash.redirect(issue_url(issue_id), state.settings, message)


@router.post("/issues/{issue_id}/retry-failed")
async def retry_failed(request: Request, state: State, issue_id: uuid.UUID) -> Response:
    await read_issue_form(request, state)
    retried = await issue_service(state).retry_failed(issue_id)
    if retried == 0:
        raise FormError("There are no failed deliveries to retry.", redirect_to=issue_url(issue_id))
    noun = "delivery" if retried == 1 else "deliveries"
    message = f"{retried} failed {noun} queued again."
    return flash.redirect(issue_url(issue_id), state.settings, message)


# -- live progress ----------------------------------------------------------------------


@router.get("/issues/{issue_id}/events")
async def issue_events(request: Request, state: State, issue_id: uuid.UUID) -> Response:
    """``text/event-stream``: ``event: progress`` with ``Progress.as_json()``; ends at ``sent``."""
    service = issue_service(state)
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
