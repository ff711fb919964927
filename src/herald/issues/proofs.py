"""Test sends ("proofs"): the issue rendered for a few addresses the editor names, queued
as ``test`` deliveries with an inert unsubscribe link and ``[TEST]`` in the subject.

Their "View in browser" link opens the admin's preview of the issue (sign-in required), not
a reader's signed web copy: a test address is no subscriber, so there is no reader's copy to
show, and a signed public link to an unpublished draft would leak it to anyone the test is
forwarded to. The link is there so the test shows the footer exactly as readers get it.

A test is the email the editor's preview shows (``issues/views.py``): the same compile (the
issue's preheader included), the same links (:func:`sample_links`), the same render; only
the subject says ``[TEST]``."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial

from herald.core.config import Settings
from herald.core.db import Database
from herald.core.errors import ValidationError
from herald.delivery import repository as deliveries
from herald.delivery.domain import DeliveryKind
from herald.design.current import current_design
from herald.email.message import EmailMessage
from herald.issues.rendering import (
    CompiledIssue,
    compile_issue,
    issue_email,
    off_loop,
    render_or_refuse,
)
from herald.issues.service import IssueService
from herald.subscriptions.domain import SubscriberEmail
from herald.subscriptions.unsubscribe import inert_unsubscribe_url

MAX_ADDRESSES = 10


def sample_links(settings: Settings, issue_id: uuid.UUID | None) -> tuple[str, str]:
    """The unsubscribe and "View in browser" links of a copy that goes to no subscriber (a
    preview, a test): an inert unsubscribe link, and the admin's preview of the issue (a
    reader's signed web copy, ``/v/…``, for content not saved yet: a sample of one)."""
    base, inert = settings.public_base_url, inert_unsubscribe_url(settings)
    if issue_id is None:
        return inert, f"{base}/v/sample"
    return f"{inert}&issue={issue_id}", f"{base}/admin/issues/{issue_id}/preview"


@dataclass(frozen=True)
class Proofs:
    db: Database
    settings: Settings

    async def send(
        self, issue_id: uuid.UUID, emails: Sequence[str], name: str = "Test Reader"
    ) -> list[str]:
        """Queue one rendered copy to each address, all or none: an invalid address is a
        400 naming it. The addresses as queued (normalised)."""
        addresses = list(dict.fromkeys(SubscriberEmail.parse(e).value for e in emails))
        if not addresses:
            raise ValidationError("enter at least one email address", field="email")
        if len(addresses) > MAX_ADDRESSES:
            raise ValidationError(
                f"a test goes to at most {MAX_ADDRESSES} addresses", field="email"
            )
        issue = await IssueService(self.db, self.settings).get(issue_id)
        base_url = self.settings.public_base_url
        unsubscribe_url, view_url = sample_links(self.settings, issue_id)
        design = await current_design(self.db, self.settings)

        def one(compiled: CompiledIssue, address: str) -> EmailMessage:
            message = issue_email(
                compiled,
                sender=self.settings.sender,
                recipient=address,
                name=name,
                unsubscribe_url=unsubscribe_url,
                base_url=base_url,
                view_url=view_url,
            )
            return replace(message, subject=f"[TEST] {message.subject}")

        def render() -> list[EmailMessage]:
            compiled = compile_issue(
                issue.title,
                issue.html,
                issue.text,
                design.branding,
                preheader=issue.preheader,
                layout_source=design.layout_source,
            )
            return [render_or_refuse(partial(one, compiled, a)) for a in addresses]

        messages = await off_loop(render)
        async with self.db.transaction() as conn:
            for message in messages:
                await deliveries.enqueue(
                    conn,
                    kind=DeliveryKind.TEST,
                    message=message,
                    max_attempts=self.settings.delivery.max_attempts,
                )
        return addresses
