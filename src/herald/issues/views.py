"""What the issue pages read: the list with results, an issue's overview, its previews (of a
saved issue, or of the editor's unsaved content), a subscriber's history.

Read-only use cases, so that the admin handlers only parse, call one of these and
render. Previews and the size check render off the event loop under the sandbox's
time limit (``issues/rendering.py``).
"""

from __future__ import annotations

import html
import uuid
from dataclasses import dataclass
from datetime import datetime

from herald.core.config import Settings
from herald.core.db import Database
from herald.core.errors import ValidationError
from herald.delivery.domain import DeliveryStatus
from herald.email.layout import Branding
from herald.issues import repository
from herald.issues.domain import Issue, IssueContent, IssueStatus
from herald.issues.rendering import compile_issue, off_loop, render_or_refuse
from herald.issues.repository import DeliveryRow, HistoryEntry
from herald.issues.service import IssueService, Progress

# Gmail clips an email's HTML above 102 KB ("[Message clipped] View entire message").
GMAIL_CLIP_BYTES = 102 * 1024
SAMPLE_NAME = "Sample Subscriber"
SAMPLE_EMAIL = "sample@example.com"


FAILURE_REASONS = 5
# The reasons are those of the last queued failures only (the highest ids), so that an issue
# page costs the same however many of its deliveries failed.
FAILURE_SAMPLE = 1_000


@dataclass(frozen=True, slots=True)
class IssueResults:
    """One line of the issue list: the issue and, once published, where its deliveries are."""

    issue: Issue
    counts: dict[DeliveryStatus, int]

    @property
    def started(self) -> bool:
        return self.issue.status in (IssueStatus.PUBLISHING, IssueStatus.SENT)

    @property
    def sent(self) -> int | None:
        if not self.started or self.issue.recipients is None:
            return None
        return max(0, self.issue.recipients - sum(self.counts.values()))

    def count(self, status: str) -> int:
        return self.counts.get(DeliveryStatus(status), 0)


@dataclass(frozen=True, slots=True)
class IssueList:
    rows: list[IssueResults]
    next_before: tuple[datetime, uuid.UUID] | None  # the cursor of the next page, if any


@dataclass(frozen=True, slots=True)
class IssueOverview:
    """The issue page: the issue, its progress, the most common reasons its last queued
    :data:`FAILURE_SAMPLE` failed deliveries failed, one page of its deliveries (of one
    status, or all; ``next_before`` is the next page's cursor), and the size of its HTML
    part (None when it cannot be rendered)."""

    issue: Issue
    progress: Progress
    deliveries: list[DeliveryRow]
    shown_status: DeliveryStatus | None
    html_bytes: int | None
    failures: list[tuple[str, int]]
    before: int | None = None
    next_before: int | None = None

    @property
    def failures_sampled(self) -> int | None:
        """How many failures the reasons are drawn from, when not all of them."""
        failed = self.progress.counts.get(DeliveryStatus.FAILED, 0)
        return FAILURE_SAMPLE if failed > FAILURE_SAMPLE else None


@dataclass(frozen=True, slots=True)
class IssuePreview:
    title: str
    html: str
    text: str

    @property
    def html_bytes(self) -> int:
        return len(self.html.encode())

    @property
    def clipped(self) -> bool:
        """Gmail would clip it."""
        return self.html_bytes > GMAIL_CLIP_BYTES

    def as_json(self) -> dict[str, object]:
        return {
            "title": self.title,
            "text": self.text,
            "html_bytes": self.html_bytes,
            "clip_bytes": GMAIL_CLIP_BYTES,
            "clipped": self.clipped,
        }

    def document(self) -> str:
        """The HTML part as a page of its own, titled after the issue: the email as it is
        when it is a complete document (the email layout's), its title marked a preview."""
        if self.html.startswith("<!doctype html>"):
            return self.html.replace("<title>", "<title>Preview: ", 1)
        return (
            '<!doctype html>\n<html><head><meta charset="utf-8">'
            f"<title>Preview: {html.escape(self.title)}</title></head>\n"
            f"<body>\n{self.html}</body></html>\n"
        )


@dataclass(frozen=True)
class IssueViews:
    db: Database
    settings: Settings

    @property
    def _branding(self) -> Branding:
        return Branding.from_settings(self.settings)

    async def issue_list(
        self, limit: int = 50, before: tuple[datetime, uuid.UUID] | None = None
    ) -> IssueList:
        """A page of issues, newest first, with their results: one grouped query for the
        page that reads only deliveries not yet sent (sent = recipients minus the rest)."""
        async with self.db.connection() as conn:
            issues = await repository.list_issues(conn, limit + 1, before)
            page = issues[:limit]
            started = [i.id for i in page if i.status in (IssueStatus.PUBLISHING, IssueStatus.SENT)]
            counts = await repository.unsent_counts(conn, started) if started else {}
        rows = [IssueResults(i, counts.get(i.id, {})) for i in page]
        last = page[-1] if len(issues) > limit else None
        return IssueList(rows, (last.created_at, last.id) if last else None)

    async def overview(
        self,
        issue_id: uuid.UUID,
        status: DeliveryStatus | None = None,
        deliveries: int = 100,
        before: int | None = None,
    ) -> IssueOverview:
        issue, progress = await IssueService(self.db, self.settings).with_progress(issue_id)
        async with self.db.connection() as conn:
            rows = await repository.recent_deliveries(
                conn, issue_id, status, deliveries + 1, before
            )
            failures = []
            if progress.counts.get(DeliveryStatus.FAILED):
                failures = await repository.failure_reasons(
                    conn, issue_id, FAILURE_REASONS, FAILURE_SAMPLE
                )
        try:
            body_html, _ = await self._render(issue, name=SAMPLE_NAME, email=SAMPLE_EMAIL)
            html_bytes: int | None = len(body_html.encode())
        except ValidationError:
            html_bytes = None
        next_before = rows[deliveries - 1].id if len(rows) > deliveries else None
        return IssueOverview(
            issue,
            progress,
            rows[:deliveries],
            status,
            html_bytes,
            failures,
            before=before,
            next_before=next_before,
        )

    async def preview_content(self, content: IssueContent) -> IssuePreview:
        """Unsaved content (the editor's live preview) as the sample subscriber gets it:
        compiled and rendered off the event loop under the sandbox's time limit; a
        template that fails is a 400 naming the problem."""
        unsubscribe = f"{self.settings.public_base_url}/unsubscribe/one-click?token=preview"

        def render() -> tuple[str, str]:
            compiled = compile_issue(
                content.title,
                content.html,
                content.text,
                self._branding,
                preheader=content.preheader,
            )
            return render_or_refuse(
                lambda: compiled.render(
                    name=SAMPLE_NAME, email=SAMPLE_EMAIL, unsubscribe_url=unsubscribe
                )
            )

        body_html, body_text = await off_loop(render)
        return IssuePreview(content.title, body_html, body_text)

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
            compiled = compile_issue(
                issue.title, issue.html, issue.text, self._branding, preheader=issue.preheader
            )
            return render_or_refuse(
                lambda: compiled.render(name=name, email=email, unsubscribe_url=unsubscribe)
            )

        return await off_loop(render)
