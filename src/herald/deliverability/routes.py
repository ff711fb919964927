"""The providers' webhooks: ``POST /webhooks/postmark`` (contract §5, Deliverability).

Not part of the JSON API (no ``/api/v1`` prefix, not in the OpenAPI document): Postmark
posts here with the credentials it was given. The credentials are checked before the body
is read, so an unauthenticated client never gets its body parsed.

A plain Starlette route, not a FastAPI one: it takes no parameters, and a bounce storm is
one request per event, so FastAPI's dependency solving would be paid 100,000 times a
minute for nothing (errors still go through ``web/errors.py``'s handlers, which the app
installs for every route).
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse

from herald.deliverability.coalescing import EventCoalescer
from herald.deliverability.postmark_webhook import PostmarkWebhook, coalescer
from herald.web.state import AppState, state_of

router = APIRouter(tags=["webhooks"], include_in_schema=False)

# Postmark's records are small; with "include content" on, a bounce or complaint carries
# the bounced message's dump (a newsletter's HTML): 1 MiB keeps those too.
POSTMARK_MAX_BYTES = 1024 * 1024


async def postmark_webhook(request: Request) -> JSONResponse:
    state = state_of(request)
    recorded = await PostmarkWebhook(state.settings, recorder(state)).receive(
        request.headers.get("authorization"), request.body
    )
    return JSONResponse({"stored": sum(1 for r in recorded if r.stored)})


router.add_route("/webhooks/postmark", postmark_webhook, methods=["POST"], include_in_schema=False)


def recorder(state: AppState) -> EventCoalescer:
    """This process's coalescing recorder, made by its first webhook call (Postmark's or
    SES's: both share it, so one storm is one queue of recordings)."""
    found = state.find(EventCoalescer)
    if found is None:
        found = coalescer(state.db, state.settings)
        state.provide(EventCoalescer, found)
    return found
