"""What the issue pages read: the list with results, an issue's overview, its previews (of a
saved issue, or of the editor's unsaved content), a subscriber's history.

Read-only use cases, so that the admin handlers only parse, call one of these and
render. Previews and the size check render off the event loop under the sandbox's
time limit (``issues/rendering.py``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from herald.core.config import Settings
from herald.core.db import Database
from herald.core.errors import NotFound, ValidationError
from herald.deliverability.domain import EventKind
from herald.deliverability.rates import Feedback
from herald.delivery.domain import DeliveryStatus
from herald.design.current import current_design
from herald.issues import recipients, repository
from herald.issues.domain import Issue, IssueContent, IssueStatus
from herald.issues.preheaders import preheader
from herald.issues.previews import IssuePreview
from herald.issues.proofs import sample_links
from herald.issues.recipients import DeliveryRow, HistoryEntry
from herald.issues.rendering import compile_issue, off_loop, render_or_refuse
from herald.issues.service import IssueService, Progress
from herald.issues.targeting import TargetOptions, options

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
    reported: dict[EventKind, int] = field(default_factory=dict)

    @property
    def feedback(self) -> Feedback:
        """The providers' reports (bounces, complaints, blocks) over the recipients sent to."""
        return Feedback(self.reported, self.sent)

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
    reported: dict[EventKind, int] = field(default_factory=dict)

    @property
    def feedback(self) -> Feedback:
        """The providers' reports, delivered included, over the recipients sent to."""
        sent = self.progress.counts.get(DeliveryStatus.SENT)
        return Feedback(self.reported, sent)

    @property
    def failures_sampled(self) -> int | None:
        """How many failures the reasons are drawn from, when not all of them."""
        failed = self.progress.counts.get(DeliveryStatus.FAILED, 0)
        return FAILURE_SAMPLE if failed > FAILURE_SAMPLE else None


@dataclass(frozen=True, slots=True)
class DeliveryPage:
    rows: list[DeliveryRow]
    next_before: int | None  # the next page's cursor, if any


@dataclass(frozen=True)
class IssueViews:
    db: Database
    settings: Settings

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
            reported = await repository.feedback_counts(conn, started) if started else {}
        rows = [IssueResults(i, counts.get(i.id, {}), reported.get(i.id, {})) for i in page]
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
            rows = await recipients.recent_deliveries(
                conn, issue_id, status, deliveries + 1, before
            )
            failures = []
            if progress.counts.get(DeliveryStatus.FAILED):
                failures = await repository.failure_reasons(
                    conn, issue_id, FAILURE_REASONS, FAILURE_SAMPLE
                )
            reported = await repository.feedback_counts(conn, [issue_id], delivered=True)
        try:
            sample = await self._render(issue, issue.id, name=SAMPLE_NAME, email=SAMPLE_EMAIL)
            html_bytes: int | None = sample.html_bytes
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
            reported=reported[issue_id],
        )

    async def stats(self, issue_id: uuid.UUID) -> tuple[Progress, Feedback]:
        """The issue's progress and what the providers reported about it (the API's stats)."""
        progress = await IssueService(self.db, self.settings).progress(issue_id)
        async with self.db.connection() as conn:
            reported = await repository.feedback_counts(conn, [issue_id], delivered=True)
        return progress, Feedback(reported[issue_id], progress.counts.get(DeliveryStatus.SENT))

    async def deliveries(
        self,
        issue_id: uuid.UUID,
        status: DeliveryStatus | None,
        limit: int,
        before: int | None = None,
    ) -> DeliveryPage:
        """A page of the issue's deliveries, latest first (the overview's, alone)."""
        async with self.db.connection() as conn:
            if await repository.get_issue(conn, issue_id) is None:
                raise NotFound("no such newsletter issue")
            rows = await recipients.recent_deliveries(conn, issue_id, status, limit + 1, before)
        return DeliveryPage(rows[:limit], rows[limit - 1].id if len(rows) > limit else None)

    async def editor(self, issue_id: uuid.UUID | None = None) -> tuple[Issue | None, TargetOptions]:
        """The editor's page: the issue (None: a new one) and what it can be sent to."""
        issue = await IssueService(self.db, self.settings).get(issue_id) if issue_id else None
        return issue, await options(self.db)

    async def preview_content(
        self, content: IssueContent, issue_id: uuid.UUID | None = None
    ) -> IssuePreview:
        """Unsaved content (the editor's live preview; ``issue_id`` when it edits a saved
        issue) as the sample subscriber gets it; a template that fails is a 400 naming the
        problem."""
        return await self._render(content, issue_id, name=SAMPLE_NAME, email=SAMPLE_EMAIL)

    async def preview(self, issue_id: uuid.UUID, *, name: str, email: str) -> IssuePreview:
        """The issue as ``name`` would get it: the email a test send to ``email`` is."""
        issue = await IssueService(self.db, self.settings).get(issue_id)
        return await self._render(issue, issue_id, name=name, email=email)

    async def subscriber_history(
        self, subscriber_id: uuid.UUID, limit: int = 200
    ) -> list[HistoryEntry]:
        """Everything sent (or queued) to one subscriber, newest first."""
        async with self.db.connection() as conn:
            return await recipients.subscriber_history(conn, subscriber_id, limit)

    async def _render(
        self, issue: Issue | IssueContent, issue_id: uuid.UUID | None, *, name: str, email: str
    ) -> IssuePreview:
        """Compiled and rendered off the event loop under the sandbox's time limit, with
        the links of a test send (:func:`~herald.issues.proofs.sample_links`)."""
        unsubscribe, view = sample_links(self.settings, issue_id)
        design = await current_design(self.db, self.settings)

        def render() -> tuple[str, str]:
            compiled = compile_issue(
                issue.title,
                issue.html,
                issue.text,
                design.branding,
                preheader=issue.preheader,
                layout_source=design.layout_source,
            )
            return render_or_refuse(
                lambda: compiled.render(
                    name=name, email=email, unsubscribe_url=unsubscribe, view_url=view
                )
            )

        body_html, body_text = await off_loop(render)
        # The inbox line: the issue's own preheader, else the text body's first words
        # (the body without the footer every copy ends with).
        inbox_line = issue.preheader or preheader(body_text.rsplit("\n\n--\n", 1)[0])
        return IssuePreview(issue.title, body_html, body_text, inbox_line)
