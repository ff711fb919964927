"""What the issue pages' forms submit, turned into domain values. No I/O.

* The editor chooses a format: Markdown (HTML and text are derived from it), or
  HTML and/or plain text written by hand; and may set the preheader (optional).
* "Send to": the lists (repeated ``lists`` checkboxes, slugs; a new issue has the default
  list checked) and a segment (``segment_id``, empty: everyone on the lists). The fieldset
  carries a hidden ``send_to`` marker: with it, no list checked is a 400; without it (a
  scripted post of the form as it was before lists) the target is left as it is.
* The preview's toggles (``part``, ``width``, ``scheme``) travel with the form, so that a
  page shown again keeps them; the preview route checks the ones it uses
  (``issues/previews.py``).
* A schedule is a ``datetime-local`` value (``2030-01-31T09:30``) read in a named time
  zone (``Europe/Paris``, the form's select; the page's script preselects the browser's),
  so a date across a daylight-saving change gets that date's offset. Without a zone, a
  UTC offset (``+02:00``, ``-0500`` or ``Z``) is used; a value that carries its own
  offset (full ISO-8601) wins over both. Either way the result is timezone-aware.
* A test send goes to up to :data:`MAX_TEST_ADDRESSES` addresses, separated by commas,
  semicolons or new lines (each is validated by the service).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from herald.core.errors import ValidationError
from herald.issues.domain import DEFAULT_LIST, Issue, IssueContent, TargetChoice
from herald.issues.previews import PARTS, SCHEMES

FORMATS = ("markdown", "html")
_OFFSET = re.compile(r"([+-])(\d{2}):?(\d{2})")
_MAX_OFFSET = timedelta(hours=14)
_ADDRESS_SEPARATORS = re.compile(r"[,;\s]+")
MAX_TEST_ADDRESSES = 10
WIDTHS = ("desktop", "phone")


@dataclass(frozen=True, slots=True)
class IssueForm:
    title: str = ""
    format: str = "markdown"
    markdown: str = ""
    html_content: str = ""
    text_content: str = ""
    preheader: str = ""
    part: str = "html"  # the preview's toggles
    width: str = "desktop"
    scheme: str = "light"
    lists: tuple[str, ...] = (DEFAULT_LIST,)  # "Send to": the lists' slugs
    segment_id: str = ""
    send_to: bool = True  # the form had the "Send to" fieldset
    public: bool = False  # "Show it in the public archive"
    public_field: bool = True  # the form had that checkbox (a scripted post may not)
    tracking: bool = False  # "Track opens and clicks"
    tracking_field: bool = True  # the form had that checkbox (a scripted post may not)

    @classmethod
    def from_form(cls, form: dict[str, str], lists: Sequence[str] = ()) -> IssueForm:
        """The posted fields; ``lists``: every value of the repeated ``lists`` field."""
        return cls(
            title=form.get("title", ""),
            format=_choice(form, "format", FORMATS),
            markdown=form.get("markdown", ""),
            html_content=form.get("html_content", ""),
            text_content=form.get("text_content", ""),
            preheader=form.get("preheader", ""),
            part=_choice(form, "part", PARTS),
            width=_choice(form, "width", WIDTHS),
            scheme=_choice(form, "scheme", SCHEMES),
            lists=tuple(lists),
            segment_id=form.get("segment_id", ""),
            send_to="send_to" in form,
            public=form.get("public") == "on",
            public_field="public_field" in form,
            tracking=form.get("tracking") == "on",
            tracking_field="tracking_field" in form,
        )

    @classmethod
    def from_issue(cls, issue: Issue) -> IssueForm:
        segment = issue.target.segment
        return cls(
            title=issue.title,
            format="markdown" if issue.markdown is not None else "html",
            markdown=issue.markdown or "",
            html_content=issue.html,
            text_content=issue.text,
            preheader=issue.preheader,
            lists=issue.target.slugs,
            segment_id=str(segment.id) if segment else "",
            public=issue.public,
            tracking=issue.tracking,
        )

    def target(self) -> TargetChoice | None:
        """The chosen lists and segment (a 400 naming the field when there is no list or a
        value is malformed); None when the form had no "Send to" fieldset."""
        if not self.send_to:
            return None
        return TargetChoice.parse(list(self.lists), self.segment_id)

    def track(self) -> bool | None:
        """Whether the issue is tracked; None: the form had no such checkbox (left as is)."""
        return self.tracking if self.tracking_field else None

    def preview_content(self) -> IssueContent:
        """What the editor shows while typing: an untitled draft is previewed as such."""
        titled = self if self.title.strip() else replace(self, title="Untitled issue")
        return titled.content()

    def content(self) -> IssueContent:
        if self.format == "markdown":
            if not self.markdown.strip():
                raise ValidationError("the Markdown body must not be empty", field="markdown")
            return IssueContent.parse(
                title=self.title,
                markdown=self.markdown,
                preheader=self.preheader,
                public=self.public if self.public_field else None,
            )
        return IssueContent.parse(
            title=self.title,
            html_content=self.html_content,
            text_content=self.text_content,
            preheader=self.preheader,
            public=self.public if self.public_field else None,
        )


def _choice(form: dict[str, str], name: str, allowed: tuple[str, ...]) -> str:
    """A radio group's value; the first choice when absent or not one of them."""
    value = form.get(name, allowed[0])
    return value if value in allowed else allowed[0]


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


@cache
def zone_names() -> tuple[str, ...]:
    """Every IANA zone name this machine knows, sorted (the schedule form's select)."""
    return tuple(sorted(available_timezones() | {"UTC"}))


def parse_zone(name: str) -> ZoneInfo:
    """``Europe/Paris`` → its zone; an unknown name is a 400 naming it."""
    text = name.strip()
    if text not in zone_names():
        raise ValidationError(f"unknown time zone {text!r}", field="timezone")
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"unknown time zone {text!r}", field="timezone") from None


def zone_or_utc(name: str | None) -> tzinfo:
    """The zone to show times in (a remembered choice), UTC when unknown or absent."""
    try:
        return parse_zone(name) if name else UTC
    except ValidationError:
        return UTC


def parse_addresses(raw: str) -> list[str]:
    """The test-send field: addresses separated by commas, semicolons or new lines."""
    found = [a for a in _ADDRESS_SEPARATORS.split(raw.strip()) if a]
    if not found:
        raise ValidationError("enter at least one email address", field="email")
    unique = list(dict.fromkeys(found))
    if len(unique) > MAX_TEST_ADDRESSES:
        raise ValidationError(
            f"a test goes to at most {MAX_TEST_ADDRESSES} addresses ({len(unique)} given)",
            field="email",
        )
    return unique


def parse_schedule(value: str, utc_offset: str, zone: str = "") -> datetime:
    """A timezone-aware instant from the schedule form (the future check is the service's).

    In a named zone, a wall-clock time that does not exist (skipped by a daylight-saving
    change) is refused; one that happens twice means the first time (``fold=0``)."""
    text = value.strip()
    if not text:
        raise ValidationError("choose a date and time to schedule the issue", field="scheduled_at")
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(
            "the schedule time must look like 2030-01-31T09:30", field="scheduled_at"
        ) from None
    if at.tzinfo is not None:
        return at
    if zone.strip():
        tz = parse_zone(zone)
        local = at.replace(tzinfo=tz)
        try:
            round_trip = local.astimezone(UTC).astimezone(tz).replace(tzinfo=None)
        except OverflowError:
            raise ValidationError(
                "the schedule time is out of range", field="scheduled_at"
            ) from None
        if round_trip != at:
            raise ValidationError(
                f"{text} does not exist in {zone.strip()} (the clocks skip it for "
                "daylight saving time): choose another time",
                field="scheduled_at",
            )
        return local
    return at.replace(tzinfo=parse_offset(utc_offset))
