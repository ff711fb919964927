"""``POST /webhooks/ses``'s use case: Amazon SES's notifications through Amazon SNS.

The body is an SNS message (:mod:`herald.deliverability.sns`), checked before anything
is stored or fetched on its behalf: its topic is one of ``HERALD_EMAIL__SES__TOPIC_ARNS``,
it is recent, and its signature verifies with the certificate of an allowed SNS host.

* ``Notification``: its ``Message`` is an SES notification
  (:mod:`herald.deliverability.ses`), whose events the recorder stores and runs through
  the policy — through the process's :class:`EventCoalescer`, so a storm of notifications
  is recorded in a few transactions, not one per message; a replay stores nothing new
  (the same provider event ids).
* ``SubscriptionConfirmation``: Herald confirms the subscription itself, with a GET of the
  ``SubscribeURL`` (checked to be SNS's ConfirmSubscription of the same topic on an allowed
  host) — subscribing the endpoint to an allowed topic in the AWS console is then all
  the set-up there is. With ``HERALD_EMAIL__SES__CONFIRM_SUBSCRIPTIONS=false``, or when the
  GET fails, the URL is logged (a warning) for the operator to open.
* ``UnsubscribeConfirmation``: logged; Herald never subscribes again by itself.

No topic configured: 404, the endpoint is off.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from herald.core.config import Settings
from herald.core.errors import NotFound, Unavailable, ValidationError
from herald.core.telemetry import get_logger
from herald.deliverability import ses
from herald.deliverability.coalescing import EventCoalescer
from herald.deliverability.domain import RecordedEvent
from herald.deliverability.sns import SnsMessage, SnsMessageType, SnsVerifier, parse_message

log = get_logger("herald.deliverability.ses")

# SNS's answer to ConfirmSubscription is a few hundred bytes of XML.
CONFIRMATION_MAX_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Received:
    """What became of one SNS message."""

    type: SnsMessageType
    recorded: list[RecordedEvent] = field(default_factory=list)
    confirmed: bool = False  # a subscription confirmed by Herald's own GET


@dataclass(frozen=True, slots=True)
class SesWebhook:
    settings: Settings
    verifier: SnsVerifier
    recorder: EventCoalescer  # the process's, shared with Postmark's webhook

    async def receive(self, body: bytes, message_type: str | None = None) -> Received:
        """Verify the SNS message in ``body`` and act on it (see the module docstring).
        ``message_type``: SNS's ``x-amz-sns-message-type`` header, when sent."""
        if not self.verifier.enabled:
            raise NotFound("SES notifications are not enabled on this Herald")
        message = parse_message(body)
        if message_type is not None and message_type != message.type.value:
            raise ValidationError(
                "the x-amz-sns-message-type header does not match the message's Type"
            )
        await self.verifier.verify(message)
        if message.type is SnsMessageType.SUBSCRIPTION_CONFIRMATION:
            return Received(message.type, confirmed=await self._confirm(message))
        if message.type is SnsMessageType.UNSUBSCRIBE_CONFIRMATION:
            log.warning(
                "the SES notification topic unsubscribed this Herald",
                topic=message.topic_arn,
            )
            return Received(message.type)
        events = ses.parse_notification(message.message, sns_message_id=message.message_id)
        if not events:
            log.debug("ses notification without events", sns_message_id=message.message_id)
            return Received(message.type)
        return Received(message.type, recorded=await self.recorder.record(events))

    async def _confirm(self, message: SnsMessage) -> bool:
        url = self.verifier.confirmation_url(message)
        if not self.settings.email.ses.confirm_subscriptions:
            log.warning(
                "confirm the SES notification topic's subscription by opening its URL",
                topic=message.topic_arn,
                subscribe_url=url,
            )
            return False
        try:
            await self.verifier.certificates.fetch(url, CONFIRMATION_MAX_BYTES)
        except Unavailable as exc:
            log.warning(
                "the SES notification topic's subscription could not be confirmed; SNS "
                "will ask again, or open its URL",
                topic=message.topic_arn,
                subscribe_url=url,
                error=exc.message,
            )
            raise
        log.info("subscribed to the SES notification topic", topic=message.topic_arn)
        return True
