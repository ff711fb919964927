"""What the issue pages read: an issue's overview, its previews, a subscriber's history.

Read-only use cases, so that the admin handlers only parse, call one of these and
render. Previews and the size check render off the event loop under the sandbox's
time limit (``issues/rendering.py``).
"""

from __future__ import annotations

import html
import uuid
from dataclasses import dataclass

from herald.core.config import Settings
from herald.core.db import Database
from herald.core.errors import ValidationError
from herald.delivery.domain import DeliveryStatus
from herald.issues import repository
from herald.issues.domain import Issue
from herald.issues.rendering import compile_issue, off_loop, render_or_refuse
from herald.issues.repository import DeliveryRow, HistoryEntry
from herald.issues.service import IssueService, Progress

# Gmail clips an email's HTML above 102 KB ("[Message clipped] View entire message").
GMAIL_CLIP_BYTES = 102 * 1024
SAMPLE_NAME = "Sample Subscriber"
SAMPLE_EMAIL = "sample@example.com"


@dataclass(frozen=True, slots=True)
class IssueOverview:
    """The issue page: the issue, its progress, its latest deliveries (of one status, or
    all), and the size of its HTML part (None when it cannot be rendered)."""

    issue: Issue
    progress: Progress
    deliveries: list[DeliveryRow]
    shown_status: DeliveryStatus | None
    html_bytes: int | None


@dataclass(frozen=True, slots=True)
class IssuePreview:
    title: str
    html: str
    text: str

    def document(self) -> str:
        """The HTML part as a page of its own, titled after the issue."""
        return (
            '<!doctype html>\n<html><head><meta charset="utf-8">'
            f"<title>Preview: {html.escape(self.title)}</title></head>\n"
            f"<body>\n{self.html}</body></html>\n"
        )


@dataclass(frozen=True)
class IssueViews:
    db: Database
    settings: Settings

    async def overview(
        self, issue_id: uuid.UUID, status: DeliveryStatus | None = None, deliveries: int = 100
    ) -> IssueOverview:
        issue, progress = await IssueService(self.db, self.settings).with_progress(issue_id)
        async with self.db.connection() as conn:
            rows = await repository.recent_deliveries(conn, issue_id, status, deliveries)
        try:
            body_html, _ = await self._render(issue, name=SAMPLE_NAME, email=SAMPLE_EMAIL)
            html_bytes: int | None = len(body_html.encode())
        except ValidationError:
            html_bytes = None
        return IssueOverview(issue, progress, rows, status, html_bytes)

    async def preview(self, issue_id: uuid.UUID, *, name: str, email: str) -> IssuePreview:
        """The issue as ``name`` would get it (an inert unsubscribe link); a template that
        fails to render is a 400 naming the problem."""
        issue = await IssueService(self.db, self.settings).get(issue_id)
        body_html, body_text = await self._render(issue, name=name, email=email)
        return IssuePreview(issue.title, body_html, body_text)

    async def subscriber_history(
        self, subscriber_id: uuid.UUID, limit: int = 200
    ) -> list[HistoryEntry]:
        """Everything sent (or queued) to one subscriber, newest first."""
        async with self.db.connection() as conn:
            return await repository.subscriber_history(conn, subscriber_id, limit)

    async def _render(self, issue: Issue, *, name: str, email: str) -> tuple[str, str]:
        unsubscribe = f"{self.settings.public_base_url}/unsubscribe/one-click?token=preview"

        def render() -> tuple[str, str]:
            compiled = compile_issue(issue.title, issue.html, issue.text)
            return render_or_refuse(
                lambda: compiled.render(name=name, email=email, unsubscribe_url=unsubscribe)
            )

        return await off_loop(render)
