"""Subscribe, confirm and unsubscribe: the use cases behind the public routes (the
admin's subscriber pages are ``directory``).

Every state change and the email it causes commit together (transactional
outbox): the confirmation email is a row in ``deliveries`` written in the same
transaction as the subscription and its token. A crash can lose neither one
without the other.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from herald.core import live
from herald.core.config import Settings
from herald.core.db import Connection, Database
from herald.core.errors import Conflict, NotFound, Unauthorized, ValidationError
from herald.core.telemetry import get_logger
from herald.delivery import repository as deliveries
from herald.delivery.domain import DeliveryKind
from herald.design.current import current_design
from herald.design.domain import Design
from herald.email.message import EmailMessage
from herald.subscriptions import repository
from herald.subscriptions.domain import (
    NewSubscriber,
    SubscriptionStatus,
    hash_token,
    is_well_formed_token,
    new_confirmation_token,
)
from herald.subscriptions.emails import confirmation_email
from herald.subscriptions.unsubscribe import parse_token

log = get_logger("herald.subscriptions")

DAY_SECONDS = 24 * 3600.0


class SubscribeOutcome(StrEnum):
    CONFIRMATION_SENT = "confirmation_sent"
    ALREADY_CONFIRMED = "already_confirmed"
    # Pending, but enough confirmation emails went to this address today.
    CONFIRMATION_THROTTLED = "confirmation_throttled"


class ConfirmOutcome(StrEnum):
    CONFIRMED = "confirmed"
    ALREADY_CONFIRMED = "already_confirmed"


@dataclass(frozen=True)
class SubscriptionService:
    db: Database
    settings: Settings

    async def subscribe(self, new: NewSubscriber) -> SubscribeOutcome:
        # The token and the email are prepared before the transaction opens, so that it
        # holds a pooled connection only for its statements: for a new address (the
        # common case) BEGIN, one insert of row + token, the outbox row, COMMIT.
        token = new_confirmation_token()
        design = await current_design(self.db, self.settings)  # cached: no query per sign-up
        message = self._confirmation(new, token, design)
        ttl_seconds = self.settings.subscriptions.token_ttl_hours * 3600
        async with self.db.transaction() as conn:
            inserted = await repository.insert_pending_with_token(
                conn, new, hash_token(token), ttl_seconds
            )
            if inserted is not None:
                await self._enqueue(conn, inserted, message)
                await live.notify(conn, live.event("subscriber.created", subscriber_id=inserted))
                log.info("subscription created", subscriber_id=str(inserted))
                return SubscribeOutcome.CONFIRMATION_SENT
            # The address exists (or a concurrent request inserted it first): lock its row.
            existing = await repository.lock_by_email(conn, new.email.value)
            if existing is None:  # pragma: no cover - deleted in between
                raise RuntimeError("subscription vanished during sign-up")
            if existing.status is SubscriptionStatus.CONFIRMED:
                return SubscribeOutcome.ALREADY_CONFIRMED
            await repository.set_pending(conn, existing.id, new.name.value)
            if existing.status is SubscriptionStatus.UNSUBSCRIBED:
                # Back to pending: a sign-up in the figures (0011's subscriber_daily), so
                # the live tiles hear of it, also when its confirmation email is throttled.
                # A pending address signing up again changes no figure: no event.
                again = live.event(
                    "subscriber.created", subscriber_id=existing.id, resubscribed=True
                )
                await live.notify(conn, again)
                log.info("subscription renewed", subscriber_id=str(existing.id))
            sent_today = await repository.confirmations_since(conn, existing.id, DAY_SECONDS)
            if sent_today >= self.settings.subscriptions.max_confirmations_per_day:
                log.warning("confirmation throttled", subscriber_id=str(existing.id))
                return SubscribeOutcome.CONFIRMATION_THROTTLED
            await repository.insert_token(conn, hash_token(token), existing.id, ttl_seconds)
            await self._enqueue(conn, existing.id, message)
            return SubscribeOutcome.CONFIRMATION_SENT

    async def add(self, new: NewSubscriber) -> repository.SubscriptionView:
        """A new address, pending, with its confirmation email (double opt-in): the
        JSON API's create. An address already known, in any status, is a ``Conflict``
        (``subscribe`` would send it another confirmation instead)."""
        token = new_confirmation_token()
        design = await current_design(self.db, self.settings)  # cached: no query per sign-up
        message = self._confirmation(new, token, design)
        ttl_seconds = self.settings.subscriptions.token_ttl_hours * 3600
        async with self.db.transaction() as conn:
            inserted = await repository.insert_pending_with_token(
                conn, new, hash_token(token), ttl_seconds
            )
            if inserted is None:
                raise Conflict("a subscriber with this email address already exists")
            await self._enqueue(conn, inserted, message)
            await live.notify(conn, live.event("subscriber.created", subscriber_id=inserted))
            view = await repository.get_by_id(conn, inserted)
        assert view is not None  # inserted in this transaction
        log.info("subscription created", subscriber_id=str(inserted), via="api")
        return view

    def _confirmation(self, new: NewSubscriber, token: str, design: Design) -> EmailMessage:
        return confirmation_email(
            new,
            token=token,
            base_url=self.settings.public_base_url,
            sender=self.settings.sender,
            ttl_hours=self.settings.subscriptions.token_ttl_hours,
            branding=design.branding,
            layout_source=design.layout_source,
        )

    async def _enqueue(
        self, conn: Connection, subscriber_id: uuid.UUID, message: EmailMessage
    ) -> None:
        await deliveries.enqueue(
            conn,
            kind=DeliveryKind.CONFIRMATION,
            message=message,
            max_attempts=self.settings.delivery.max_attempts,
            subscriber_id=subscriber_id,
        )

    async def confirm(self, token: str) -> ConfirmOutcome:
        if not is_well_formed_token(token):
            raise Unauthorized("this confirmation link is unknown or has expired")
        async with self.db.transaction() as conn:
            found = await repository.lock_token(conn, hash_token(token))
            if found is None or found.status is SubscriptionStatus.UNSUBSCRIBED:
                raise Unauthorized("this confirmation link is unknown or has expired")
            if found.status is SubscriptionStatus.CONFIRMED:
                return ConfirmOutcome.ALREADY_CONFIRMED
            if found.expired:
                raise Unauthorized(
                    "this confirmation link has expired: subscribe again to get a new one"
                )
            await repository.confirm(conn, found.subscriber_id)
            confirmed = live.event("subscriber.confirmed", subscriber_id=found.subscriber_id)
            await live.notify(conn, confirmed)
        log.info("subscription confirmed", subscriber_id=str(found.subscriber_id))
        return ConfirmOutcome.CONFIRMED

    async def unsubscriber(self, token: str) -> repository.SubscriptionView:
        """Who an unsubscribe token names; 400 for a token that does not verify."""
        subscriber_id = parse_token(self.settings, token)
        if subscriber_id is None:
            raise ValidationError("this unsubscribe link is not valid", field="token")
        async with self.db.connection() as conn:
            found = await repository.get_by_id(conn, subscriber_id)
        if found is None:
            raise NotFound("this subscription no longer exists")
        return found

    async def unsubscribe(self, token: str) -> bool:
        """Unsubscribe at once (idempotent); True when this call changed anything."""
        subscriber_id = parse_token(self.settings, token)
        if subscriber_id is None:
            raise ValidationError("this unsubscribe link is not valid", field="token")
        async with self.db.transaction() as conn:  # the change and its event commit together
            known, changed = await repository.unsubscribe(conn, subscriber_id)
            if changed:
                gone = live.event("subscriber.unsubscribed", subscriber_id=subscriber_id)
                await live.notify(conn, gone)
        if changed:
            log.info("unsubscribed", subscriber_id=str(subscriber_id))
        return changed or not known
