"""The welcome emails' use cases: the editor's (read, save after a compile and a sample
render, preview, test send) and the confirmation's (:class:`WelcomeSender`, the
:class:`~herald.subscriptions.welcoming.Welcomer` the composition root provides)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace

from herald.core.config import Settings
from herald.core.db import Connection, Database
from herald.core.errors import NotFound, ValidationError
from herald.core.telemetry import get_logger
from herald.delivery import repository as deliveries
from herald.delivery.domain import DeliveryKind
from herald.design.current import current_design, design_in
from herald.email.message import EmailMessage
from herald.issues.previews import IssuePreview
from herald.issues.rendering import attributes, off_loop
from herald.lists.domain import NewsList
from herald.lists.service import ListService
from herald.subscriptions.domain import SubscriberEmail
from herald.subscriptions.unsubscribe import inert_unsubscribe_url, list_unsubscribe_url
from herald.subscriptions.welcoming import Welcomer
from herald.welcomes import repository
from herald.welcomes.domain import DEFAULT_BODY, DEFAULT_SUBJECT, Welcome, WelcomeDraft
from herald.welcomes.email import (
    SAMPLE_NAME,
    compile_welcome,
    compiled_for,
    sample,
    welcome_email,
)

log = get_logger("herald.welcomes")


@dataclass(frozen=True, slots=True)
class WelcomeView:
    """The editor's page: the list, its welcome (a blank one when it has none yet)."""

    news_list: NewsList
    welcome: Welcome | None
    draft: WelcomeDraft


@dataclass(frozen=True)
class WelcomeService:
    db: Database
    settings: Settings

    async def get(self, list_id: uuid.UUID) -> Welcome | None:
        """The list's saved welcome, if it has one (the list's page shows whether it is on)."""
        async with self.db.connection() as conn:
            return await repository.get(conn, list_id)

    async def view(self, list_id: uuid.UUID) -> WelcomeView:
        news_list = await ListService(self.db, self.settings).get(list_id)  # 404 if unknown
        async with self.db.connection() as conn:
            welcome = await repository.get(conn, list_id)
        if welcome is None:
            draft = WelcomeDraft(enabled=False, subject=DEFAULT_SUBJECT, body=DEFAULT_BODY)
        else:
            draft = WelcomeDraft(welcome.enabled, welcome.subject, welcome.body)
        return WelcomeView(news_list, welcome, draft)

    async def save(
        self, list_id: uuid.UUID, draft: WelcomeDraft, user_id: uuid.UUID | None = None
    ) -> Welcome:
        """Saved only when it compiles and renders for the sample reader (else a 400
        naming the problem); a 404 for an unknown list."""
        await self.preview(list_id, draft)
        async with self.db.transaction() as conn:
            saved = await repository.save(conn, list_id, draft, user_id)
        if saved is None:
            raise NotFound("no such list")
        log.info("welcome email saved", list_id=str(list_id), enabled=saved.enabled)
        return saved

    async def preview(self, list_id: uuid.UUID, draft: WelcomeDraft | None = None) -> IssuePreview:
        """``draft`` (the saved welcome, else the blank one) as the sample reader gets it."""
        view = await self.view(list_id)
        shown = draft or view.draft
        design = await current_design(self.db, self.settings)

        def render() -> IssuePreview:
            compiled = compile_welcome(shown.subject, shown.body, view.news_list.name, design)
            return sample(compiled, unsubscribe_url=inert_unsubscribe_url(self.settings))

        return await off_loop(render)

    async def send_test(self, list_id: uuid.UUID, email: str) -> str:
        """The saved welcome (or the blank one) to one address, ``[TEST]`` in the subject,
        with an inert unsubscribe link; queued as a ``test`` delivery. The address as
        queued."""
        address = SubscriberEmail.parse(email).value
        view = await self.view(list_id)
        design = await current_design(self.db, self.settings)

        def render() -> EmailMessage:
            compiled = compile_welcome(
                view.draft.subject, view.draft.body, view.news_list.name, design
            )
            message = welcome_email(
                compiled,
                sender=self.settings.sender,
                recipient=address,
                name=SAMPLE_NAME,
                unsubscribe_url=inert_unsubscribe_url(self.settings),
                base_url=self.settings.public_base_url,
            )
            return replace(message, subject=f"[TEST] {message.subject}")

        message = await off_loop(render)
        async with self.db.transaction() as conn:
            await deliveries.enqueue(
                conn,
                kind=DeliveryKind.TEST,
                message=message,
                max_attempts=self.settings.delivery.max_attempts,
            )
        return address


@dataclass(frozen=True)
class WelcomeSender(Welcomer):
    """Queues the welcomes a confirmation earned, in its transaction: taken from
    ``list_welcomes_sent`` first (at most once per reader and list), rendered off the event
    loop, queued as ``welcome`` deliveries carrying the message. A reader whose welcome
    cannot be rendered (a template that worked for the sample reader fails for their
    attributes) is logged and not welcomed: their confirmation stands."""

    settings: Settings

    async def welcome(self, conn: Connection, subscriber_id: uuid.UUID) -> int:
        due = await repository.take_due(conn, subscriber_id)
        if not due:
            return 0
        # Through the transaction's own connection: a second one from the pool while this
        # one is held could wait forever when every connection is in such a transaction.
        design = await design_in(conn, self.settings)

        def render() -> list[EmailMessage | str]:
            out: list[EmailMessage | str] = []
            for one in due:
                welcome = one.welcome
                try:
                    compiled = compiled_for(
                        welcome.list_id,
                        welcome.updated_at,
                        welcome.subject,
                        welcome.body,
                        one.list_name,
                        design,
                    )
                    out.append(
                        welcome_email(
                            compiled,
                            sender=self.settings.sender,
                            recipient=one.email,
                            name=one.name,
                            # One click leaves this list alone (the issue's link: its lists).
                            unsubscribe_url=list_unsubscribe_url(
                                self.settings, subscriber_id, welcome.list_id
                            ),
                            base_url=self.settings.public_base_url,
                            attributes=attributes(one.attributes),
                        )
                    )
                except ValidationError as exc:
                    out.append(exc.message)
            return out

        queued = 0
        for one, message in zip(due, await off_loop(render), strict=True):
            if isinstance(message, str):
                log.warning(
                    "welcome email not rendered",
                    list_id=str(one.welcome.list_id),
                    subscriber_id=str(subscriber_id),
                    error=message,
                )
                continue
            await deliveries.enqueue(
                conn,
                kind=DeliveryKind.WELCOME,
                message=message,
                max_attempts=self.settings.delivery.max_attempts,
                subscriber_id=subscriber_id,
            )
            queued += 1
        log.info("welcome emails queued", subscriber_id=str(subscriber_id), count=queued)
        return queued
