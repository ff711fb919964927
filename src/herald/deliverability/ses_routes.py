"""``POST /webhooks/ses``: Amazon SES's notifications, delivered by Amazon SNS.

Not part of the JSON API (no ``/api/v1`` prefix, not in the OpenAPI document). SNS posts
its JSON with ``Content-Type: text/plain``, so the raw body is read whatever the content
type (at most :data:`SES_MAX_BYTES`, the body limit the composition root sets) and handed
to :class:`~herald.deliverability.ses_webhook.SesWebhook`. 200 once the message is handled
(a replay too: nothing new is stored); 400 for a body that is not an SNS message or an SES
notification, 403 for a forged, foreign or stale one, 404 while no topic is configured,
503 when the signing certificate cannot be fetched (SNS tries again). A plain Starlette
route, like Postmark's (see ``routes``): no per-call dependency solving in a storm.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse

from herald.deliverability.routes import recorder
from herald.deliverability.ses_webhook import SesWebhook
from herald.deliverability.sns import SnsVerifier
from herald.deliverability.sns_certificates import SigningCertificates
from herald.web.state import AppState, state_of

router = APIRouter(tags=["webhooks"], include_in_schema=False)

# SNS messages are at most 256 KiB; SES's, with the original headers, are far smaller.
# JSON escaping of the Message inside the envelope can double it.
SES_MAX_BYTES = 1024 * 1024


async def ses_webhook(request: Request) -> JSONResponse:
    state = state_of(request)
    received = await SesWebhook(state.settings, verifier(state), recorder(state)).receive(
        await request.body(), request.headers.get("x-amz-sns-message-type")
    )
    return JSONResponse(
        {
            "type": received.type.value,
            "stored": sum(1 for r in received.recorded if r.stored),
            "confirmed": received.confirmed,
        }
    )


router.add_route("/webhooks/ses", ses_webhook, methods=["POST"], include_in_schema=False)


def verifier(state: AppState) -> SnsVerifier:
    """This process's verifier, made with the first message: its certificate cache lasts
    as long as the process. (A test provides its own, reaching a local stand-in.)"""
    found = state.find(SnsVerifier)
    if found is None:
        timeout = state.settings.email.timeout_seconds
        found = SnsVerifier(state.settings.email.ses, SigningCertificates(timeout_seconds=timeout))
        state.provide(SnsVerifier, found)
    return found
