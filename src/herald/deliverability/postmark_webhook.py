"""``POST /webhooks/postmark``'s use case: check the credentials, parse, record.

Postmark does not sign its webhooks; it sends the HTTP basic auth credentials written
into the webhook's URL (``https://user:password@news.example.org/webhooks/postmark``), so
the endpoint answers 401 unless both ``HERALD_EMAIL__POSTMARK__WEBHOOK_USERNAME`` and
``__WEBHOOK_PASSWORD`` are set and the request carries exactly them. Then 200 once the
events are stored (a replayed or ignored record too, so Postmark does not retry it), 400
for a body that is not a Postmark record.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from herald.core.config import Settings
from herald.core.db import Database
from herald.core.errors import Unauthorized
from herald.core.telemetry import get_logger
from herald.deliverability import postmark
from herald.deliverability.coalescing import EventCoalescer
from herald.deliverability.domain import RecordedEvent
from herald.deliverability.policy import configured
from herald.deliverability.service import EventRecorder

log = get_logger("herald.deliverability.postmark")

CHALLENGE = 'Basic realm="Herald webhooks", charset="UTF-8"'
REFUSED = "wrong or missing webhook credentials"


def coalescer(db: Database, settings: Settings) -> EventCoalescer:
    """A process's recorder of webhook events (one per process: see ``coalescing``)."""
    return EventCoalescer(EventRecorder(db, configured(settings.deliverability)))


@dataclass(frozen=True, slots=True)
class PostmarkWebhook:
    settings: Settings
    recorder: EventCoalescer

    async def receive(
        self, authorization: str | None, read_body: Callable[[], Awaitable[bytes]]
    ) -> list[RecordedEvent]:
        """Check the credentials, then (only then) read the body, parse it and record its
        events; what became of them."""
        self._authenticate(authorization)
        events = postmark.parse(await read_body())
        if not events:
            log.debug("postmark record ignored")
            return []
        return await self.recorder.record(events)

    def _authenticate(self, authorization: str | None) -> None:
        """``Unauthorized`` (with a basic-auth challenge) unless the credentials match."""
        config = self.settings.email.postmark
        username, password = config.webhook_username, config.webhook_password
        if not username or password is None or not password.get_secret_value():
            # The same answer as wrong credentials: the client learns nothing of the set-up.
            log.warning(
                "a Postmark webhook was refused: HERALD_EMAIL__POSTMARK__WEBHOOK_USERNAME "
                "and __WEBHOOK_PASSWORD are not set"
            )
            raise Unauthorized(REFUSED, challenge=CHALLENGE)
        if not postmark.check_basic_auth(authorization, username, password.get_secret_value()):
            raise Unauthorized(REFUSED, challenge=CHALLENGE)
