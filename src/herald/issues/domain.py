"""Newsletter issues: what an issue is and which state changes are allowed. No I/O."""

from __future__ import annotations

import html
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from herald.core.errors import Conflict, ValidationError
from herald.email.plaintext import html_to_text

MAX_TITLE_LENGTH = 200
# The inbox preview line after the subject: clients show 35-140 characters of it.
MAX_PREHEADER_LENGTH = 150
# The issue forms accept request bodies of up to 2 MiB (every other route 64 KiB): one
# body field may use all of it.
MAX_BODY_LENGTH = 2 * 1024 * 1024
DEFAULT_LIST = "default"  # an issue without chosen lists goes to this one (contract)
MAX_TARGET_LISTS = 100
_SLUG = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")


class IssueStatus(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    PUBLISHING = "publishing"
    SENT = "sent"

    @property
    def editable(self) -> bool:
        return self in {IssueStatus.DRAFT, IssueStatus.SCHEDULED}


def require_editable(status: IssueStatus) -> None:
    if not status.editable:
        raise Conflict(f"this issue is {status.value}: it can no longer be changed")


@dataclass(frozen=True, slots=True)
class ListRef:
    slug: str
    name: str


@dataclass(frozen=True, slots=True)
class SegmentRef:
    id: uuid.UUID
    name: str


@dataclass(frozen=True, slots=True)
class Target:
    """Who an issue goes to: the confirmed members of any of ``lists`` (an issue without
    chosen lists: the default list, as every issue of the previous release), narrowed to
    the readers of ``segment`` when one is set."""

    lists: tuple[ListRef, ...] = ()
    segment: SegmentRef | None = None

    @property
    def slugs(self) -> tuple[str, ...]:
        return tuple(ref.slug for ref in self.lists) or (DEFAULT_LIST,)

    def describe(self) -> str:
        """ "Newsletter and Offers, segment “Paris”": for the issue pages."""
        names = [ref.name for ref in self.lists] or ["the default list"]
        text = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        return f"{text}, segment “{self.segment.name}”" if self.segment else text


@dataclass(frozen=True, slots=True)
class TargetChoice:
    """What an editor or API client asked an issue to go to, checked for shape (the
    service checks that the lists and the segment exist). No ``slugs`` (only made by
    :meth:`segment_only`): the issue keeps its lists and only its segment changes."""

    slugs: tuple[str, ...]
    segment_id: uuid.UUID | None = None

    @classmethod
    def parse(cls, lists: object, segment_id: object = None) -> TargetChoice:
        if not isinstance(lists, list | tuple) or not all(isinstance(v, str) for v in lists):
            raise ValidationError("lists must be a list of list slugs", field="lists")
        slugs = tuple(dict.fromkeys(v.strip() for v in lists if v.strip()))
        if not slugs:
            raise ValidationError("choose at least one list to send the issue to", field="lists")
        if len(slugs) > MAX_TARGET_LISTS:
            raise ValidationError(
                f"an issue goes to at most {MAX_TARGET_LISTS} lists", field="lists"
            )
        bad = [s for s in slugs if len(s) > 60 or not _SLUG.fullmatch(s)]
        if bad:
            raise ValidationError(f"not a list slug: {bad[0][:60]!r}", field="lists")
        return cls(slugs, parse_segment_id(segment_id))

    @classmethod
    def segment_only(cls, segment_id: object) -> TargetChoice:
        return cls((), parse_segment_id(segment_id))


def parse_segment_id(value: object) -> uuid.UUID | None:
    """A segment id, or None for "everyone on the lists" (absent, null or empty)."""
    if value is None or isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str):
        raise ValidationError("segment_id must be a segment's id", field="segment_id")
    if not value.strip():
        return None
    try:
        return uuid.UUID(value.strip())
    except ValueError:
        raise ValidationError("segment_id must be a segment's id", field="segment_id") from None


@dataclass(frozen=True, slots=True)
class Issue:
    """A newsletter issue: its content, where it is in its life, and its fan-out and
    scheduled-publishing bookkeeping."""

    id: uuid.UUID
    title: str
    markdown: str | None
    html: str
    text: str
    status: IssueStatus
    scheduled_at: datetime | None
    published_at: datetime | None
    completed_at: datetime | None
    recipients: int | None
    created_at: datetime
    updated_at: datetime
    fanout_done_at: datetime | None = None
    fanout_error: str | None = None
    fanout_attempts: int = 0
    fanout_retry_at: datetime | None = None
    publish_error: str | None = None
    publish_attempts: int = 0
    publish_retry_at: datetime | None = None
    preheader: str = ""  # the inbox preview line; empty: each copy's text body's first words
    target: Target = Target()
    public: bool = False  # shown in its public lists' archives and feeds once sent
    archive_slug: str | None = None  # its archive address, given once at publishing
    tracking: bool = False  # opens and clicks tracked (engagement/), frozen at publishing

    @property
    def fanning_out(self) -> bool:
        """Publishing, and its deliveries are still being queued by the workers."""
        return self.status is IssueStatus.PUBLISHING and self.fanout_done_at is None


@dataclass(frozen=True, slots=True)
class IssueContent:
    """A title and both bodies; ``markdown`` is kept when the bodies came from it.
    ``preheader``: the inbox preview line the editor set (empty: derived per copy).
    ``public``: shown in the public archive once sent (None: as it is, false when new)."""

    title: str
    html: str
    text: str
    markdown: str | None = None
    preheader: str = ""
    public: bool | None = None

    @classmethod
    def parse(
        cls,
        *,
        title: object,
        markdown: object = None,
        html_content: object = None,
        text_content: object = None,
        preheader: object = None,
        public: bool | None = None,
    ) -> IssueContent:
        """Validate a submitted issue. Markdown wins when given; otherwise HTML and/or
        text, the missing one derived from the other."""
        from herald.issues.markdown import markdown_bodies

        clean_title = _text(title, "title").strip()
        if not clean_title:
            raise ValidationError("title must not be empty", field="title")
        if len(clean_title) > MAX_TITLE_LENGTH:
            raise ValidationError(
                f"title is too long: at most {MAX_TITLE_LENGTH} characters", field="title"
            )
        if any(ch in clean_title for ch in "\r\n"):
            raise ValidationError("title must be a single line", field="title")
        line = parse_preheader(preheader)
        source = _text(markdown, "markdown").strip()
        body_html = _text(html_content, "html_content").strip()
        body_text = _text(text_content, "text_content").strip()
        for name, value in (
            ("markdown", source),
            ("html_content", body_html),
            ("text_content", body_text),
        ):
            if len(value) > MAX_BODY_LENGTH:
                raise ValidationError(f"{name} is too long", field=name)
        if source:
            html, text = markdown_bodies(source)
            return cls(clean_title, html, text, source, line, public)
        if not body_html and not body_text:
            raise ValidationError(
                "the issue needs content: text_content and/or html_content (or markdown)",
                field="text_content",
            )
        if not body_html:
            body_html = text_to_html(body_text)
        if not body_text:
            body_text = html_to_text(body_html)
        return cls(clean_title, body_html, body_text, preheader=line, public=public)


def parse_preheader(value: object) -> str:
    """The editor's preheader, whitespace collapsed to single spaces (it is one line);
    longer than :data:`MAX_PREHEADER_LENGTH` is a 400 naming the field."""
    line = " ".join(_text(value, "preheader").split())
    if len(line) > MAX_PREHEADER_LENGTH:
        raise ValidationError(
            f"preheader is too long: at most {MAX_PREHEADER_LENGTH} characters ({len(line)} given)",
            field="preheader",
        )
    return line


def _text(value: object, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be a string", field=field)
    return value


def text_to_html(text: str) -> str:
    paragraphs = [p.strip() for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()]
    return "\n".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)
