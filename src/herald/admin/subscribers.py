"""Subscriber pages: the list (status tabs with counts, search, keyset pages, sort), one
subscriber's timeline, and the actions (resend confirmation, unsubscribe, delete) on
one subscriber, a selection, or everyone matching a filter.

Deleting asks first (a confirmation page, also for any action over a whole filter);
every action is a CSRF-checked form post answered by a redirect with a flash.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from herald.auth.web import CurrentSession, require_session
from herald.core.errors import NotFound, ValidationError
from herald.jobs.domain import Job, JobStatus
from herald.segments.service import Attributes
from herald.subscriptions import bulk as bulk_actions
from herald.subscriptions.bulk import Action
from herald.subscriptions.directory import MAX_SELECTED, SubscriberDirectory
from herald.subscriptions.listing import ListFilter, Sort, Tab
from herald.web import csrf, flash
from herald.web.errors import FormError, form_errors
from herald.web.json_body import parse_json
from herald.web.pages import page
from herald.web.state import State

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_session)])

LIST = "/admin/subscribers"
TAB_LABELS = {
    Tab.ALL: "All",
    Tab.CONFIRMED: "Confirmed",
    Tab.PENDING: "Pending",
    Tab.UNSUBSCRIBED: "Unsubscribed",
}
FILTER_FIELDS = ("status", "q", "match", "sort")
NOT_RESENT = (
    "No confirmation email sent: this subscriber is not pending, or already got today's "
    "limit of confirmation emails."
)


def list_url(where: ListFilter, **extra: str) -> str:
    """The list's address for ``where`` (plus ``extra`` parameters, e.g. a cursor)."""
    params = {**where.params(), **{k: v for k, v in extra.items() if v}}
    return f"{LIST}?{urlencode(params)}" if params else LIST


def _directory(state: State) -> SubscriberDirectory:
    return SubscriberDirectory(state.db, state.settings)


async def _post(request: Request, state: State) -> tuple[dict[str, str], list[str]]:
    """The form's fields (last value of each) and its selected ``id`` values, after the
    CSRF check."""
    form = await request.form(max_files=0, max_fields=MAX_SELECTED + 20)
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    csrf.check(request, state.settings, fields.get(csrf.FORM_FIELD))
    return fields, [v for v in form.getlist("id") if isinstance(v, str)]


def _ids(raw: list[str]) -> list[uuid.UUID]:
    try:
        return [uuid.UUID(value) for value in raw]
    except ValueError:
        raise ValidationError("a selected subscriber id is not valid", field="id") from None


@router.get("/subscribers", response_class=HTMLResponse)
async def list_subscribers(
    request: Request,
    state: State,
    status: str = "",
    q: str = "",
    match: str = "",
    sort: str = "",
    after: str = "",
    before: str = "",
) -> Response:
    where = ListFilter.parse(status=status, q=q, match=match, sort=sort)
    directory = _directory(state)
    found = await directory.page(where, after=after, before=before)
    jobs = await directory.jobs()
    tabs = [
        (
            tab,
            TAB_LABELS[tab],
            found.total if tab.status is None else found.counts[tab.status],
            list_url(ListFilter(tab, where.query, where.match, where.sort)),
        )
        for tab in Tab
    ]
    return page(
        request,
        "admin/subscribers.html",
        found=found,
        where=where,
        tabs=tabs,
        subscribers=found.subscribers,
        q=where.query,
        newer_url=list_url(where, before=str(found.newer)) if found.newer else "",
        older_url=list_url(where, after=str(found.older)) if found.older else "",
        sort_url={s: list_url(ListFilter(where.tab, where.query, where.match, s)) for s in Sort},
        clear_url=list_url(ListFilter(where.tab, "", where.match, where.sort)),
        jobs=jobs,
        here=list_url(where, after=after, before=before),
    )


@router.get("/subscribers/{subscriber_id}", response_class=HTMLResponse)
async def show_subscriber(
    request: Request,
    state: State,
    subscriber_id: uuid.UUID,
    before: Annotated[str, Query(max_length=80)] = "",
) -> Response:
    subscriber, timeline = await _directory(state).timeline(subscriber_id, before)
    attributes = (await Attributes(state.db).member(subscriber_id)).attributes
    return page(
        request,
        "admin/subscriber.html",
        subscriber=subscriber,
        timeline=timeline,
        before=before,
        attributes=json.dumps(attributes, indent=2, ensure_ascii=False) if attributes else "",
    )


@router.post("/subscribers/{subscriber_id}/attributes")
async def set_attributes(request: Request, state: State, subscriber_id: uuid.UUID) -> Response:
    """Replace the attributes with the JSON object of the form (empty: none)."""
    fields, _ = await _post(request, state)
    here = f"{LIST}/{subscriber_id}"
    with form_errors(here, ValidationError, NotFound):
        text = fields.get("attributes", "").strip() or "{}"
        await Attributes(state.db).replace(subscriber_id, parse_json(text.encode()))
    return flash.redirect(here, state.settings, "The attributes have been saved.")


@router.post("/subscribers/{subscriber_id}/{verb}")
async def act_on_one(
    request: Request, state: State, subscriber_id: uuid.UUID, verb: str
) -> Response:
    await _post(request, state)
    here = f"{LIST}/{subscriber_id}"
    with form_errors(here, ValidationError, NotFound):
        action = Action.parse({"resend-confirmation": "resend"}.get(verb, verb))
        result = await _directory(state).act(action, [subscriber_id])
    if result.done == 0 and action is Action.RESEND:
        raise FormError(NOT_RESENT, redirect_to=here)
    after = LIST if action is Action.DELETE else here
    return flash.redirect(after, state.settings, result.message())


@router.get("/subscribers/{subscriber_id}/delete", response_class=HTMLResponse)
async def confirm_delete(request: Request, state: State, subscriber_id: uuid.UUID) -> Response:
    subscriber = await _directory(state).subscriber(subscriber_id)
    return page(request, "admin/subscriber_delete.html", subscriber=subscriber)


@router.post("/subscribers/bulk")
async def bulk(request: Request, state: State, session: CurrentSession) -> Response:
    fields, raw_ids = await _post(request, state)
    directory = _directory(state)
    with form_errors(LIST, ValidationError):
        where = ListFilter.parse(**{k: fields.get(k, "") for k in FILTER_FIELDS})
    back = list_url(where)
    with form_errors(back, ValidationError):
        action = Action.parse(fields.get("action", ""))
        everyone = fields.get("scope") == "filter"
        ids = [] if everyone else _ids(raw_ids)
        if not everyone and not ids:
            raise ValidationError("Select at least one subscriber first.", field="id")
    if (everyone or action is Action.DELETE) and fields.get("confirm") != "yes":
        counts = await directory.counts()
        matching = None
        if not where.query:
            status = where.tab.status
            matching = counts[status] if status else sum(counts.values())
        return page(
            request,
            "admin/subscribers_bulk.html",
            action=action,
            everyone=everyone,
            ids=ids,
            where=where,
            matching=matching,
            back=back,
        )
    with form_errors(back, ValidationError):
        if not everyone:
            result = await directory.act(action, ids)
            return flash.redirect(back, state.settings, result.message())
        job = await directory.act_on_filter(
            action, where, budget_seconds=bulk_actions.INLINE_SECONDS, by=session.user_id
        )
    if job.status is JobStatus.FAILED:
        raise FormError(f"{job.description}: {job.message}", redirect_to=back)
    if job.status is JobStatus.DONE:
        return flash.redirect(back, state.settings, job.message or "")
    return flash.redirect(back, state.settings, background_message(job))


def background_message(job: Job) -> str:
    return (
        f"{job.description} goes on in the background: {job.done + job.skipped:,} done so "
        "far. Its progress is shown above the list."
    )


@router.post("/subscribers/jobs/{job_id}/cancel")
async def cancel_job(request: Request, state: State, job_id: uuid.UUID) -> Response:
    fields, _ = await _post(request, state)
    back = fields.get("back", "")
    back = back if back.startswith(LIST) else LIST
    with form_errors(back, ValidationError, NotFound):
        job = await _directory(state).cancel_job(job_id)
    return flash.redirect(back, state.settings, job.message or "Stopped.")
