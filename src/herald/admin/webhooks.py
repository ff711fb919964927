"""``/admin/webhooks``: outgoing webhook endpoints (Settings → Webhooks, admins only).

The list with each endpoint's state and a notice for any Herald disabled; create (the
signing secret shown on the next page only: never stored in a cookie, never shown again);
an endpoint's page — edit, enable again, rotate the secret, delete — with its failure
view: recent messages by status (keyset pages, newest first), each failed one replayable
(or all of them, 10,000 at a time),
and the latest attempts with their status or error and a response excerpt. A refused
value shows the form again (400) with what was typed and why.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from herald.auth.web import require_admin
from herald.core.errors import Conflict, NotFound, ValidationError
from herald.web import csrf, flash
from herald.web.errors import FormError, form_errors
from herald.web.forms import read_form_multi
from herald.web.pages import page
from herald.web.state import AppState, State
from herald.webhooks.domain import (
    MAX_DESCRIPTION,
    MAX_URL,
    EndpointDraft,
    EventType,
    MessageStatus,
)
from herald.webhooks.service import WebhookService

router = APIRouter(prefix="/admin/webhooks", tags=["admin"], dependencies=[Depends(require_admin)])

HOME = "/admin/webhooks"
EVENT_TYPES = [(t.value, t.description) for t in EventType]
STATUS_TABS = [
    ("", "All"),
    ("failed", "Failed"),
    ("pending", "Pending"),
    ("delivered", "Delivered"),
]
LIMITS = {"max_url": MAX_URL, "max_description": MAX_DESCRIPTION}
EMPTY_FORM: dict[str, object] = {
    "url": "",
    "description": "",
    "event_types": [],
    "enabled": True,
}


def _service(state: AppState) -> WebhookService:
    return WebhookService(state.db, state.settings)


def _form(fields: dict[str, list[str]]) -> dict[str, object]:
    def one(name: str) -> str:
        return (fields.get(name) or [""])[0]

    return {
        "url": one("url"),
        "description": one("description"),
        "event_types": fields.get("event_types", []),
        "enabled": one("enabled") == "on",
    }


async def _read(request: Request, state: AppState) -> dict[str, object]:
    fields = await read_form_multi(request, max_fields=40)
    csrf.check(request, state.settings, (fields.get(csrf.FORM_FIELD) or [""])[0])
    return _form(fields)


def _draft(service: WebhookService, form: dict[str, object]) -> EndpointDraft:
    """The form as a checked draft (``ValidationError`` naming the field)."""
    return service.draft(
        url=str(form["url"]),
        description=str(form["description"]),
        event_types=list(form["event_types"]),  # type: ignore[call-overload]
        enabled=bool(form["enabled"]),
    )


def _context(state: AppState) -> dict[str, Any]:
    return {
        "event_types": EVENT_TYPES,
        "limits": LIMITS,
        "development": _service(state).development,
        "timeout": state.settings.webhooks.timeout_seconds,
    }


@router.get("", response_class=HTMLResponse)
async def endpoints(request: Request, state: State) -> Response:
    found = await _service(state).endpoints()
    return page(request, "admin/webhooks.html", endpoints=found, form=EMPTY_FORM, **_context(state))


@router.post("")
async def create(request: Request, state: State) -> Response:
    form = await _read(request, state)
    service = _service(state)
    try:
        draft = _draft(service, form)
    except ValidationError as exc:
        found = await service.endpoints()
        return page(
            request,
            "admin/webhooks.html",
            status_code=400,
            endpoints=found,
            form=form,
            error=exc.message,
            field=exc.field,
            **_context(state),
        )
    with form_errors(HOME, Conflict):
        created = await service.create(draft)
    # Shown once, on this response only: never stored elsewhere, never put in a cookie.
    return await _endpoint_page(
        request, state, created.endpoint.id, secret=created.secret, status_code=201
    )


async def _endpoint_page(
    request: Request,
    state: AppState,
    endpoint_id: uuid.UUID,
    *,
    status: str = "",
    before: str = "",
    form: dict[str, object] | None = None,
    secret: str | None = None,
    error: str | None = None,
    field: str | None = None,
    status_code: int = 200,
) -> Response:
    chosen = MessageStatus(status) if status in {s.value for s in MessageStatus} else None
    cursor = int(before) if before.isascii() and before.isdigit() and len(before) < 19 else None
    with form_errors(HOME, NotFound):
        view = await _service(state).view(endpoint_id, before=cursor, status=chosen)
    endpoint = view.endpoint
    shown = form or {
        "url": endpoint.url,
        "description": endpoint.description,
        "event_types": list(endpoint.event_types),
        "enabled": endpoint.enabled,
    }
    return page(
        request,
        "admin/webhook.html",
        status_code=status_code,
        endpoint=endpoint,
        messages=view.messages,
        attempts=view.attempts,
        more=view.more,
        status=chosen.value if chosen else "",
        status_tabs=STATUS_TABS,
        form=shown,
        secret=secret,
        error=error,
        field=field,
        **_context(state),
    )


@router.get("/{endpoint_id}", response_class=HTMLResponse)
async def endpoint(
    request: Request, state: State, endpoint_id: uuid.UUID, status: str = "", before: str = ""
) -> Response:
    return await _endpoint_page(request, state, endpoint_id, status=status, before=before)


@router.post("/{endpoint_id}")
async def change(request: Request, state: State, endpoint_id: uuid.UUID) -> Response:
    form = await _read(request, state)
    service = _service(state)
    back = f"{HOME}/{endpoint_id}"
    try:
        draft = _draft(service, form)
    except ValidationError as exc:
        return await _endpoint_page(
            request,
            state,
            endpoint_id,
            form=form,
            error=exc.message,
            field=exc.field,
            status_code=400,
        )
    with form_errors(HOME, NotFound):
        await service.change(endpoint_id, draft)
    return flash.redirect(back, state.settings, "The endpoint has been saved.")


@router.post("/{endpoint_id}/enable")
async def enable(request: Request, state: State, endpoint_id: uuid.UUID) -> Response:
    await _read(request, state)
    with form_errors(HOME, NotFound):
        await _service(state).set_enabled(endpoint_id, enabled=True)
    return flash.redirect(
        f"{HOME}/{endpoint_id}",
        state.settings,
        "The endpoint is enabled again. Replay the failed messages you still want it to get.",
    )


@router.post("/{endpoint_id}/secret")
async def rotate_secret(request: Request, state: State, endpoint_id: uuid.UUID) -> Response:
    await _read(request, state)
    with form_errors(HOME, NotFound):
        secret = await _service(state).rotate_secret(endpoint_id)
    return await _endpoint_page(request, state, endpoint_id, secret=secret)


@router.post("/{endpoint_id}/delete")
async def delete(request: Request, state: State, endpoint_id: uuid.UUID) -> Response:
    form = await read_form_multi(request, max_fields=10)
    csrf.check(request, state.settings, (form.get(csrf.FORM_FIELD) or [""])[0])
    if (form.get("confirm") or [""])[0] != "on":
        raise FormError(
            "Tick the box to confirm: the endpoint goes with all its messages.",
            redirect_to=f"{HOME}/{endpoint_id}",
        )
    with form_errors(HOME, NotFound):
        await _service(state).delete(endpoint_id)
    return flash.redirect(HOME, state.settings, "The endpoint and its messages are deleted.")


@router.post("/{endpoint_id}/messages/{message_id}/replay")
async def replay(
    request: Request, state: State, endpoint_id: uuid.UUID, message_id: int
) -> Response:
    await _read(request, state)
    back = f"{HOME}/{endpoint_id}"
    if not 0 < message_id < 2**63:
        raise NotFound("No such webhook message.")
    with form_errors(back, NotFound, Conflict):
        await _service(state).replay(endpoint_id, message_id)
    return flash.redirect(
        back, state.settings, f"Message {message_id} is queued again: it goes out within seconds."
    )


@router.post("/{endpoint_id}/replay-failed")
async def replay_failed(request: Request, state: State, endpoint_id: uuid.UUID) -> Response:
    await _read(request, state)
    back = f"{HOME}/{endpoint_id}"
    with form_errors(back, NotFound, Conflict):
        count = await _service(state).replay_failed(endpoint_id)
    if count == 0:
        return flash.redirect(back, state.settings, "No failed message to replay.")
    return flash.redirect(
        back, state.settings, f"{count:,} failed message{'s' if count != 1 else ''} queued again."
    )
