"""Actions on many subscribers: resend confirmation, unsubscribe, delete — on a
selection (one transaction) or on everyone matching a filter (a background job).

"Everyone matching" can be a million rows. It is a job (:mod:`herald.jobs`) of kind
:data:`KIND`: each step walks the next :data:`BATCH_SIZE` rows of the filter's keyset
order and acts on them in the step's transaction, which also records the checkpoint
(the last row's place), so a step happens exactly once even when its process is killed:
the job resumes from its last checkpoint in another worker. The request that starts it
runs it for :data:`INLINE_SECONDS` first, so a small filter's result is known at once.
Subscribers who arrive after the job was started are left alone.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from herald.core.config import Settings
from herald.core.db import Connection
from herald.core.errors import ValidationError
from herald.delivery import repository as deliveries
from herald.delivery.domain import DeliveryKind
from herald.design.current import design_in
from herald.jobs.domain import Job, Step
from herald.subscriptions import repository
from herald.subscriptions.domain import (
    NewSubscriber,
    SubscriberEmail,
    SubscriberName,
    hash_token,
    new_confirmation_token,
)
from herald.subscriptions.emails import confirmation_email
from herald.subscriptions.listing import Cursor, ListFilter

KIND = "subscribers.bulk"
BATCH_SIZE = 1000
INLINE_SECONDS = 2.0
DAY_SECONDS = 24 * 3600.0


class Action(StrEnum):
    RESEND = "resend"
    UNSUBSCRIBE = "unsubscribe"
    DELETE = "delete"

    @classmethod
    def parse(cls, raw: str) -> Action:
        try:
            return cls(raw)
        except ValueError:
            raise ValidationError(
                "choose an action: resend, unsubscribe or delete", field="action"
            ) from None

    @property
    def doing(self) -> str:
        return {
            Action.RESEND: "Resending the confirmation email to",
            Action.UNSUBSCRIBE: "Unsubscribing",
            Action.DELETE: "Deleting",
        }[self]


@dataclass(frozen=True, slots=True)
class ActionResult:
    action: Action
    done: int
    skipped: int

    def message(self) -> str:
        who = "subscriber" if self.done == 1 else "subscribers"
        text = {
            Action.RESEND: f"Confirmation email sent to {self.done:,} {who}.",
            Action.UNSUBSCRIBE: f"{self.done:,} {who} unsubscribed.",
            Action.DELETE: f"{self.done:,} {who} deleted.",
        }[self.action]
        if self.skipped:
            why = {
                Action.RESEND: "not pending, or at today's limit of confirmation emails",
                Action.UNSUBSCRIBE: "already unsubscribed",
                Action.DELETE: "already gone",
            }[self.action]
            text += f" {self.skipped:,} skipped ({why})."
        return text


def describe(action: Action, where: ListFilter) -> str:
    """``Unsubscribing everyone matching “gone”``: what a job over ``where`` does."""
    if where.query:
        who = f"everyone matching “{where.query}”"
        if where.tab.status is not None:
            who += f" in {where.tab.value}"
    elif where.tab.status is not None:
        who = f"everyone {where.tab.value}"
    else:
        who = "every subscriber"
    return f"{action.doing} {who}"


def job_params(action: Action, where: ListFilter) -> dict[str, str]:
    return {"action": action.value, **where.params()}


def job_action(job: Job) -> Action:
    return Action.parse(str(job.params.get("action", "")))


async def apply(
    conn: Connection,
    settings: Settings,
    action: Action,
    ids: list[uuid.UUID],
    *,
    source: str = "admin",
) -> int:
    """``action`` on the subscribers ``ids``, in ``conn``'s transaction; how many it changed.
    ``source``: who acted, recorded on the erased suppressions a delete leaves."""
    if action is Action.RESEND:
        return await _resend(conn, settings, ids)
    if action is Action.UNSUBSCRIBE:
        return await repository.unsubscribe_many(conn, ids)
    return await repository.delete_many(conn, ids, source)


async def _resend(conn: Connection, settings: Settings, ids: list[uuid.UUID]) -> int:
    """A fresh token and confirmation email for each pending subscriber among ``ids``
    under today's limit (``HERALD_SUBSCRIPTIONS__MAX_CONFIRMATIONS_PER_DAY``)."""
    limits = settings.subscriptions
    ttl_seconds = limits.token_ttl_hours * 3600
    pending = await repository.lock_resendable(
        conn, ids, window_seconds=DAY_SECONDS, per_window=limits.max_confirmations_per_day
    )
    if not pending:
        return 0
    design = await design_in(conn, settings)  # the branding and layout, once per step
    for subscriber in pending:
        token = new_confirmation_token()
        new = NewSubscriber(SubscriberEmail(subscriber.email), SubscriberName(subscriber.name))
        message = confirmation_email(
            new,
            token=token,
            base_url=settings.public_base_url,
            sender=settings.sender,
            ttl_hours=limits.token_ttl_hours,
            branding=design.branding,
            layout_source=design.layout_source,
        )
        await repository.insert_token(conn, hash_token(token), subscriber.id, ttl_seconds)
        await deliveries.enqueue(
            conn,
            kind=DeliveryKind.CONFIRMATION,
            message=message,
            max_attempts=settings.delivery.max_attempts,
            subscriber_id=subscriber.id,
        )
    return len(pending)


@dataclass(frozen=True)
class BulkActionJob:
    """The :class:`~herald.jobs.runner.JobHandler` of :data:`KIND`."""

    settings: Settings

    async def step(self, conn: Connection, job: Job) -> Step:
        params = {k: str(v) for k, v in job.params.items()}
        action = Action.parse(params.get("action", ""))
        where = ListFilter.parse(
            status=params.get("status", ""),
            q=params.get("q", ""),
            match=params.get("match", ""),
            sort=params.get("sort", ""),
        )
        cursor = Cursor.parse(job.position) if job.position else Cursor.start(where.sort)
        rows = await repository.list_page(conn, where, cursor, BATCH_SIZE)
        ids = [row.id for row in rows if row.created_at <= job.created_at]
        done = await apply(conn, self.settings, action, ids) if ids else 0
        finished = len(rows) < BATCH_SIZE
        position = None if finished else str(Cursor(rows[-1].created_at, rows[-1].id))
        return Step(done=done, skipped=len(ids) - done, position=position)

    def summary(self, job: Job) -> str:
        return ActionResult(job_action(job), job.done, job.skipped).message()
