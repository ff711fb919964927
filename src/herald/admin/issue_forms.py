"""What the issue pages' forms submit, turned into domain values. No I/O.

* The editor chooses a format: Markdown (HTML and text are derived from it), or
  HTML and/or plain text written by hand.
* A schedule is a ``datetime-local`` value (``2030-01-31T09:30``) plus a UTC offset
  (``+02:00``, ``-0500`` or ``Z``) that the page's script fills in from the browser
  for the chosen date; a value that carries its own offset (full ISO-8601) wins.
  Either way the result is timezone-aware.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from herald.core.errors import ValidationError
from herald.issues.domain import Issue, IssueContent

FORMATS = ("markdown", "html")
_OFFSET = re.compile(r"([+-])(\d{2}):?(\d{2})")
_MAX_OFFSET = timedelta(hours=14)


@dataclass(frozen=True, slots=True)
class IssueForm:
    title: str = ""
    format: str = "markdown"
    markdown: str = ""
    html_content: str = ""
    text_content: str = ""

    @classmethod
    def from_form(cls, form: dict[str, str]) -> IssueForm:
        chosen = form.get("format", "markdown")
        return cls(
            title=form.get("title", ""),
            format=chosen if chosen in FORMATS else "markdown",
            markdown=form.get("markdown", ""),
            html_content=form.get("html_content", ""),
            text_content=form.get("text_content", ""),
        )

    @classmethod
    def from_issue(cls, issue: Issue) -> IssueForm:
        return cls(
            title=issue.title,
            format="markdown" if issue.markdown is not None else "html",
            markdown=issue.markdown or "",
            html_content=issue.html,
            text_content=issue.text,
        )

    def content(self) -> IssueContent:
        if self.format == "markdown":
            if not self.markdown.strip():
                raise ValidationError("the Markdown body must not be empty", field="markdown")
            return IssueContent.parse(title=self.title, markdown=self.markdown)
        return IssueContent.parse(
            title=self.title, html_content=self.html_content, text_content=self.text_content
        )


def parse_offset(raw: str) -> timezone:
    """``+02:00``, ``-0500``, ``Z`` → a fixed-offset zone."""
    text = raw.strip()
    if text.upper() in {"Z", "UTC"}:
        return UTC
    match = _OFFSET.fullmatch(text)
    if match is None:
        raise ValidationError(
            "the UTC offset must look like +02:00, -05:00 or Z", field="utc_offset"
        )
    sign, hours, minutes = match.groups()
    delta = timedelta(hours=int(hours), minutes=int(minutes))
    if int(minutes) >= 60 or delta > _MAX_OFFSET:
        raise ValidationError("the UTC offset is out of range", field="utc_offset")
    return timezone(-delta if sign == "-" else delta)


def parse_schedule(value: str, utc_offset: str) -> datetime:
    """A timezone-aware instant from the schedule form (the future check is the service's)."""
    text = value.strip()
    if not text:
        raise ValidationError("choose a date and time to schedule the issue", field="scheduled_at")
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(
            "the schedule time must look like 2030-01-31T09:30", field="scheduled_at"
        ) from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=parse_offset(utc_offset))
    return at
