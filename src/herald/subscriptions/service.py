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
from herald.core.errors import Conflict, Unauthorized, ValidationError
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
    SuppressionReason,
    hash_token,
    is_well_formed_token,
    new_confirmation_token,
)
from herald.subscriptions.emails import confirmation_email
from herald.subscriptions.signup import (
    ChosenList,
    Consent,
    SignUp,
    plan,
    unknown_lists_message,
)
from herald.subscriptions.welcoming import NO_WELCOMES, Welcomer

log = get_logger("herald.subscriptions")

DAY_SECONDS = 24 * 3600.0


class SubscribeOutcome(StrEnum):
    CONFIRMATION_SENT = "confirmation_sent"
    ALREADY_CONFIRMED = "already_confirmed"
    # Pending, but enough confirmation emails went to this address today.
    CONFIRMATION_THROTTLED = "confirmation_throttled"
    # Every list chosen is single opt-in: confirmed at once, no email.
    CONFIRMED = "confirmed"
    # On the suppression list (erased, bounced, complained, …): nothing done.
    SUPPRESSED = "suppressed"


class ConfirmOutcome(StrEnum):
    CONFIRMED = "confirmed"
    ALREADY_CONFIRMED = "already_confirmed"


@dataclass(frozen=True)
class SubscriptionService:
    """``welcomer`` queues the lists' welcome emails in the transaction of whatever
    confirmed a membership (:mod:`.welcoming`); by default none."""

    db: Database
    settings: Settings
    welcomer: Welcomer = NO_WELCOMES

    async def subscribe(self, signup: SignUp | NewSubscriber) -> SubscribeOutcome:
        """A public form's sign-up (see :mod:`herald.subscriptions.signup`); a bare
        ``NewSubscriber`` signs up to the default list."""
        if isinstance(signup, NewSubscriber):
            signup = SignUp(signup, (), Consent(source="form", ip=None, user_agent=None))
        # The token and the email are prepared before the transaction opens, so that it
        # holds a pooled connection only for its statements: for a new address (the
        # common case) BEGIN, one statement (what the sign-up may do: lists, suppression;
        # and the row, its memberships and token), the outbox row, COMMIT.
        new = signup.new
        token = new_confirmation_token()
        design = await current_design(self.db, self.settings)  # cached: no query per sign-up
        message = self._confirmation(new, token, design)
        ttl_seconds = self.settings.subscriptions.token_ttl_hours * 3600
        async with self.db.transaction() as conn:
            context = await repository.sign_up(
                conn,
                new,
                signup.slugs,
                signup.consent,
                implicit_default=not signup.chose_lists,
                refuse_any_suppression=False,
                double_opt_in=False,
                token_hash=hash_token(token),
                ttl_seconds=ttl_seconds,
            )
            lists = _chosen(signup, context)  # nothing was written if one is missing
            if context.suppressed is not None and context.suppressed.blocks_sign_up:
                # Answered like any sign-up (nobody learns who is suppressed); nothing
                # was written and nothing is sent.
                log.info("sign-up of a suppressed address ignored", reason=context.suppressed)
                return SubscribeOutcome.SUPPRESSED
            force_double = context.suppressed is SuppressionReason.UNSUBSCRIBED
            inserted = context.inserted
            if inserted is not None:
                await live.notify(conn, live.event("subscriber.created", subscriber_id=inserted))
                log.info("subscription created", subscriber_id=str(inserted))
                if context.status is SubscriptionStatus.CONFIRMED:  # single opt-in: no email
                    await live.notify(
                        conn, live.event("subscriber.confirmed", subscriber_id=inserted)
                    )
                    await self.welcomer.welcome(conn, inserted)
                    return SubscribeOutcome.CONFIRMED
                await self._enqueue(conn, inserted, message)
                return SubscribeOutcome.CONFIRMATION_SENT
            # The address exists (or a concurrent request inserted it first): lock its row.
            existing = await repository.lock_by_email(conn, new.email.value)
            if existing is None:  # pragma: no cover - deleted in between
                raise RuntimeError("subscription vanished during sign-up")
            await repository.backfill_subscriber(conn, existing.id)
            again = plan(existing.status, lists, force_double=force_double)
            outcome = await self._again(conn, existing, signup, lists, again.confirm_now)
            # A single-opt-in list joined by a confirmed address, or the address confirmed.
            await self.welcomer.welcome(conn, existing.id)
            if outcome is not None:
                return outcome
            sent_today = await repository.confirmations_since(conn, existing.id, DAY_SECONDS)
            if sent_today >= self.settings.subscriptions.max_confirmations_per_day:
                log.warning("confirmation throttled", subscriber_id=str(existing.id))
                return SubscribeOutcome.CONFIRMATION_THROTTLED
            await repository.insert_token(conn, hash_token(token), existing.id, ttl_seconds)
            await self._enqueue(conn, existing.id, message)
            return SubscribeOutcome.CONFIRMATION_SENT

    async def _again(
        self,
        conn: Connection,
        existing: repository.Subscription,
        signup: SignUp,
        lists: list[ChosenList],
        confirm_now: tuple[bool, ...],
    ) -> SubscribeOutcome | None:
        """A known address signs up again: its memberships and status. None when a
        confirmation email is due."""
        consent = signup.consent
        if existing.status is SubscriptionStatus.CONFIRMED:
            written = await repository.upsert_memberships(
                conn, existing.id, lists, confirm_now, consent
            )
            if SubscriptionStatus.PENDING not in written:
                return SubscribeOutcome.ALREADY_CONFIRMED
            return None  # a double-opt-in list to confirm
        if existing.status is SubscriptionStatus.UNSUBSCRIBED:
            # Memberships first: the status change then finds them, and 0018's trigger
            # adds no default-list membership the reader did not choose.
            await repository.upsert_memberships(conn, existing.id, lists, confirm_now, consent)
            await repository.set_pending(conn, existing.id, signup.new.name.value)
            # Back to pending: a sign-up in the figures (0011's subscriber_daily), so
            # the live tiles hear of it, also when its confirmation email is throttled.
            # A pending address signing up again changes no figure: no event.
            back = live.event("subscriber.created", subscriber_id=existing.id, resubscribed=True)
            await live.notify(conn, back)
            log.info("subscription renewed", subscriber_id=str(existing.id))
            return None
        await repository.set_pending(conn, existing.id, signup.new.name.value)
        await repository.upsert_memberships(conn, existing.id, lists, confirm_now, consent)
        if all(confirm_now) and await repository.pending_memberships(conn, existing.id) == 0:
            # Single opt-in lists only, and no double-opt-in list waiting for this
            # address's confirmation (which confirming it now would grant unasked).
            await repository.confirm(conn, existing.id)
            await live.notify(conn, live.event("subscriber.confirmed", subscriber_id=existing.id))
            return SubscribeOutcome.CONFIRMED
        return None

    async def add(self, new: NewSubscriber) -> repository.SubscriptionView:
        """A new address, pending in the default list, with its confirmation email
        (double opt-in): the JSON API's create. An address already known, in any status,
        or on the suppression list is a ``Conflict`` (``subscribe`` would send it another
        confirmation instead)."""
        token = new_confirmation_token()
        design = await current_design(self.db, self.settings)  # cached: no query per sign-up
        message = self._confirmation(new, token, design)
        ttl_seconds = self.settings.subscriptions.token_ttl_hours * 3600
        signup = SignUp(new, (), Consent(source="api", ip=None, user_agent=None))
        async with self.db.transaction() as conn:
            context = await repository.sign_up(
                conn,
                new,
                signup.slugs,  # the default list
                signup.consent,
                implicit_default=True,
                refuse_any_suppression=True,
                double_opt_in=True,
                token_hash=hash_token(token),
                ttl_seconds=ttl_seconds,
            )
            _chosen(signup, context)
            if context.suppressed is not None:
                raise Conflict(
                    "this address is on the suppression list "
                    f"({context.suppressed.value.replace('_', ' ')}): it is not mailed again"
                )
            inserted = context.inserted
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
        """A confirmation link: the address and every list waiting for it (those of the
        sign-up that sent the link, and any other pending one)."""
        if not is_well_formed_token(token):
            raise Unauthorized("this confirmation link is unknown or has expired")
        async with self.db.transaction() as conn:
            found = await repository.lock_token(conn, hash_token(token))
            if found is None or found.status is SubscriptionStatus.UNSUBSCRIBED:
                raise Unauthorized("this confirmation link is unknown or has expired")
            waiting = await repository.pending_memberships(conn, found.subscriber_id)
            if found.status is SubscriptionStatus.CONFIRMED and not waiting:
                return ConfirmOutcome.ALREADY_CONFIRMED  # a used link, clicked again
            if found.expired:
                raise Unauthorized(
                    "this confirmation link has expired: subscribe again to get a new one"
                )
            address, joined = await repository.confirm(conn, found.subscriber_id)
            if address:
                confirmed = live.event("subscriber.confirmed", subscriber_id=found.subscriber_id)
                await live.notify(conn, confirmed)
            await self.welcomer.welcome(conn, found.subscriber_id)
        log.info("subscription confirmed", subscriber_id=str(found.subscriber_id), lists=joined)
        return ConfirmOutcome.CONFIRMED


def _chosen(signup: SignUp, context: repository.SignUpContext) -> list[ChosenList]:
    """The lists of the sign-up, in its order; a 400 naming any it may not join."""
    missing = [slug for slug in signup.slugs if slug not in context.lists]
    if missing:
        raise ValidationError(unknown_lists_message(missing), field="list")
    return [context.lists[slug] for slug in signup.slugs]
