"""Lists (newsletters) and their members: values that exist only when valid.

No web framework and no database here. A list has a ``slug`` (its address: ``/l/{slug}``
and the ``list`` field of a sign-up form), a name, a description, a visibility (a private
list has no public page) and an opt-in (double: a confirmation email first). The list with
the slug ``default`` is the one every ``POST /subscriptions`` without a ``list`` joins: its
slug never changes and it cannot be deleted.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from herald.core.errors import ValidationError

DEFAULT_SLUG = "default"
MAX_SLUG = 60
MAX_NAME = 100
MAX_DESCRIPTION = 1000
MAX_SOURCE = 200
# The one slug rule: this module's, the sign-up form's, the API's schema and the admin form's.
SLUG_PATTERN = "[a-z0-9]+(-[a-z0-9]+)*"
_SLUG = re.compile(SLUG_PATTERN)
# Control characters but line feed and tab (a description may have lines).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
SLUG_RULE = "lowercase letters, digits and single hyphens between them (like weekly-digest)"


class Visibility(StrEnum):
    PUBLIC = "public"
    PRIVATE = "private"

    @classmethod
    def parse(cls, raw: str) -> Visibility:
        try:
            return cls(raw.strip())
        except ValueError:
            raise ValidationError(
                "visibility must be public or private", field="visibility"
            ) from None


class OptIn(StrEnum):
    DOUBLE = "double"
    SINGLE = "single"

    @classmethod
    def parse(cls, raw: str) -> OptIn:
        try:
            return cls(raw.strip())
        except ValueError:
            raise ValidationError("opt_in must be double or single", field="opt_in") from None


class MemberStatus(StrEnum):
    PENDING = "pending_confirmation"
    CONFIRMED = "confirmed"
    UNSUBSCRIBED = "unsubscribed"

    @classmethod
    def parse(cls, raw: str, *, field: str = "status") -> MemberStatus:
        try:
            return cls(raw.strip())
        except ValueError:
            allowed = ", ".join(s.value for s in cls)
            raise ValidationError(f"{field} must be one of: {allowed}", field=field) from None


def is_slug(text: str) -> bool:
    return len(text) <= MAX_SLUG and _SLUG.fullmatch(text) is not None


def parse_slug(raw: str) -> str:
    slug = raw.strip()
    if not slug:
        raise ValidationError("slug must not be empty", field="slug")
    if len(slug) > MAX_SLUG:
        raise ValidationError(f"slug is longer than {MAX_SLUG} characters", field="slug")
    if not _SLUG.fullmatch(slug):
        raise ValidationError(f"slug may only hold {SLUG_RULE}", field="slug")
    return slug


def slug_from(name: str) -> str:
    """A slug suggested by a list's name ("Weekly Digest!" → ``weekly-digest``); empty
    when the name has no letter or digit in the ASCII alphabet."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    words = re.findall(r"[a-z0-9]+", ascii_name.lower())
    slug = ""
    for word in words:
        candidate = f"{slug}-{word}" if slug else word
        if len(candidate) > MAX_SLUG:
            return slug or word[:MAX_SLUG]
        slug = candidate
    return slug


def parse_name(raw: str) -> str:
    name = " ".join(unicodedata.normalize("NFC", raw).split())
    if not name:
        raise ValidationError("name must not be empty", field="name")
    if _CONTROL.search(name):
        raise ValidationError("name must not contain control characters", field="name")
    if len(name) > MAX_NAME:
        raise ValidationError(f"name is longer than {MAX_NAME} characters", field="name")
    return name


def parse_description(raw: str) -> str:
    text = unicodedata.normalize("NFC", raw.replace("\r\n", "\n").replace("\r", "\n")).strip()
    if _CONTROL.search(text):
        raise ValidationError(
            "description must not contain control characters", field="description"
        )
    if len(text) > MAX_DESCRIPTION:
        raise ValidationError(
            f"description is longer than {MAX_DESCRIPTION} characters", field="description"
        )
    return text


@dataclass(frozen=True, slots=True)
class ListDraft:
    """What a list is made of, valid. The slug defaults to one made from the name."""

    slug: str
    name: str
    description: str = ""
    visibility: Visibility = Visibility.PUBLIC
    opt_in: OptIn = OptIn.DOUBLE

    @classmethod
    def parse(
        cls,
        *,
        name: str,
        slug: str = "",
        description: str = "",
        visibility: str = Visibility.PUBLIC.value,
        opt_in: str = OptIn.DOUBLE.value,
    ) -> ListDraft:
        parsed_name = parse_name(name)
        if not slug.strip():
            slug = slug_from(parsed_name)
            if not slug:
                raise ValidationError(
                    f"give the list a slug: {SLUG_RULE}; its name has none to suggest",
                    field="slug",
                )
        return cls(
            slug=parse_slug(slug),
            name=parsed_name,
            description=parse_description(description),
            visibility=Visibility.parse(visibility),
            opt_in=OptIn.parse(opt_in),
        )


@dataclass(frozen=True, slots=True)
class ListChange:
    """A partial change (the API's PATCH): None leaves a value as it is."""

    slug: str | None = None
    name: str | None = None
    description: str | None = None
    visibility: Visibility | None = None
    opt_in: OptIn | None = None

    @classmethod
    def parse(
        cls,
        *,
        slug: str | None = None,
        name: str | None = None,
        description: str | None = None,
        visibility: str | None = None,
        opt_in: str | None = None,
    ) -> ListChange:
        return cls(
            slug=parse_slug(slug) if slug is not None else None,
            name=parse_name(name) if name is not None else None,
            description=parse_description(description) if description is not None else None,
            visibility=Visibility.parse(visibility) if visibility is not None else None,
            opt_in=OptIn.parse(opt_in) if opt_in is not None else None,
        )

    def applied_to(self, current: ListDraft) -> ListDraft:
        return ListDraft(
            slug=self.slug if self.slug is not None else current.slug,
            name=self.name if self.name is not None else current.name,
            description=self.description if self.description is not None else current.description,
            visibility=self.visibility or current.visibility,
            opt_in=self.opt_in or current.opt_in,
        )


@dataclass(frozen=True, slots=True)
class MemberCounts:
    pending: int = 0
    confirmed: int = 0
    unsubscribed: int = 0

    @property
    def total(self) -> int:
        return self.pending + self.confirmed + self.unsubscribed


@dataclass(frozen=True, slots=True)
class NewsList:
    """A stored list with its member counts (by membership status)."""

    id: uuid.UUID
    slug: str
    name: str
    description: str
    visibility: Visibility
    opt_in: OptIn
    created_at: datetime
    updated_at: datetime
    counts: MemberCounts = field(default_factory=MemberCounts)

    @property
    def is_default(self) -> bool:
        return self.slug == DEFAULT_SLUG

    @property
    def is_public(self) -> bool:
        return self.visibility is Visibility.PUBLIC

    @property
    def draft(self) -> ListDraft:
        return ListDraft(self.slug, self.name, self.description, self.visibility, self.opt_in)


def check_change(current: NewsList, wanted: ListDraft) -> None:
    """The default list keeps its slug (every form without a ``list`` field names it) and
    its double opt-in (a sign-up to it gets a confirmation email: contract §4)."""
    if current.is_default and wanted.slug != current.slug:
        raise ValidationError(
            f"the default list's slug cannot change: sign-ups without a list join '{DEFAULT_SLUG}'",
            field="slug",
        )
    if current.is_default and wanted.opt_in is not OptIn.DOUBLE:
        raise ValidationError(
            "the default list stays double opt-in: every sign-up to it gets a confirmation email",
            field="opt_in",
        )


@dataclass(frozen=True, slots=True)
class Member:
    """A subscriber's membership of one list, with its consent record."""

    subscriber_id: uuid.UUID
    email: str
    name: str
    status: MemberStatus
    subscriber_status: str  # the address's: pending_confirmation, confirmed, unsubscribed
    source: str
    consent_ip: str | None
    consent_user_agent: str | None
    created_at: datetime
    confirmed_at: datetime | None
    unsubscribed_at: datetime | None

    @property
    def mailed(self) -> bool:
        """Issues to this list reach them: the membership and the address are confirmed."""
        return self.status is MemberStatus.CONFIRMED and self.subscriber_status == "confirmed"


def api_source(key_name: str | None, username: str) -> str:
    """The consent record of a membership added through the API: ``api:<key name>`` (an
    access token has no key: ``api:<username>``)."""
    return f"api:{key_name or username}"[:MAX_SOURCE]
