"""Subscriber values that can only exist when valid ("parse, don't validate").

No web framework and no database here: these types are what the rest of Herald
trusts. A ``SubscriberName`` or ``SubscriberEmail`` that exists is valid.
"""

from __future__ import annotations

import hashlib
import secrets
import string
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

import regex
from email_validator import EmailNotValidError, validate_email

from herald.core.errors import ValidationError

MAX_NAME_GRAPHEMES = 256
# Code points (after NFC), besides graphemes: one grapheme can hold any number of combining
# marks ("zalgo" text: 'a' + 1000 marks is one grapheme). Two a grapheme on average leaves room
# for 256 accented letters, skin-toned emoji or Indic clusters; browsers' maxlength=256 on
# the form counts UTF-16 units, so a name typed there is well inside both.
MAX_NAME_CODE_POINTS = 512
# Combining marks stacked on one character: real scripts stack at most four or five
# (Tibetan subjoined letters, pointed Hebrew); zalgo stacks dozens.
MAX_STACKED_MARKS = 8
_COMBINING = frozenset({"Mn", "Me"})
FORBIDDEN_NAME_CHARACTERS = frozenset('/()"<>\\{}')
# Direction overrides/isolates and zero-width spaces: used to make a name display as
# something else. (Zero-width *joiners* stay allowed: emoji sequences need them.)
BIDI_CONTROLS = frozenset(
    "\u200b\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
TOKEN_ALPHABET = string.ascii_letters + string.digits
TOKEN_LENGTH = 32
_TOKEN_SHAPE = regex.compile(r"[A-Za-z0-9]{25,128}")
_GRAPHEME = regex.compile(r"\X")


class SubscriptionStatus(StrEnum):
    PENDING = "pending_confirmation"
    CONFIRMED = "confirmed"
    UNSUBSCRIBED = "unsubscribed"


class SuppressionReason(StrEnum):
    """Why an address is never mailed again: it unsubscribed from everything, was
    erased, hard-bounced, complained, was added by hand, or was reported by the
    email provider."""

    # The docstring above is the API's public description (OpenAPI). One enum for
    # the sign-up's check and the suppression list's pages, held to migration
    # 0018's CHECK on suppressions.reason by a test.

    UNSUBSCRIBED = "unsubscribed"
    ERASED = "erased"
    HARD_BOUNCE = "hard_bounce"
    COMPLAINT = "complaint"
    MANUAL = "manual"
    PROVIDER = "provider"

    @classmethod
    def parse(cls, raw: str, *, field: str = "reason") -> SuppressionReason:
        try:
            return cls(raw)
        except ValueError:
            allowed = ", ".join(r.value for r in cls)
            raise ValidationError(f"{field} must be one of: {allowed}", field=field) from None

    @property
    def label(self) -> str:
        return _REASON_LABELS[self]

    @property
    def blocks_sign_up(self) -> bool:
        """Every reason but ``unsubscribed``: the reader's own sign-up (double opt-in)
        may lift that one; the others are never mailed again."""
        return self is not SuppressionReason.UNSUBSCRIBED


_REASON_LABELS = {
    SuppressionReason.UNSUBSCRIBED: "Unsubscribed from all",
    SuppressionReason.ERASED: "Erased",
    SuppressionReason.HARD_BOUNCE: "Hard bounce",
    SuppressionReason.COMPLAINT: "Complaint",
    SuppressionReason.MANUAL: "Added by hand",
    SuppressionReason.PROVIDER: "Provider",
}


def grapheme_count(text: str) -> int:
    """User-perceived characters: 'é' written as e + combining accent counts once."""
    return len(_GRAPHEME.findall(text))


def longest_mark_run(text: str) -> int:
    """The most combining marks (Mn, Me) that follow one another in ``text``."""
    longest = run = 0
    for ch in text:
        run = run + 1 if unicodedata.category(ch) in _COMBINING else 0
        longest = max(longest, run)
    return longest


@dataclass(frozen=True, slots=True)
class SubscriberName:
    value: str

    @classmethod
    def parse(cls, raw: str) -> SubscriberName:
        name = raw.strip()
        if not name:
            raise ValidationError("name must not be empty", field="name")
        composed = unicodedata.normalize("NFC", name)
        if len(composed) > MAX_NAME_CODE_POINTS:
            raise ValidationError(
                f"name is too long: at most {MAX_NAME_CODE_POINTS} Unicode code points",
                field="name",
            )
        if longest_mark_run(composed) > MAX_STACKED_MARKS:
            raise ValidationError(
                f"name stacks too many accents on one letter (at most {MAX_STACKED_MARKS})",
                field="name",
            )
        if grapheme_count(name) > MAX_NAME_GRAPHEMES:
            raise ValidationError(
                f"name is too long: at most {MAX_NAME_GRAPHEMES} characters", field="name"
            )
        forbidden = sorted(FORBIDDEN_NAME_CHARACTERS.intersection(name))
        if forbidden:
            shown = " ".join(forbidden)
            raise ValidationError(f"name must not contain any of: {shown}", field="name")
        if any(unicodedata.category(ch) in {"Cc", "Cs"} or ch in BIDI_CONTROLS for ch in name):
            raise ValidationError("name must not contain control characters", field="name")
        return cls(name)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class SubscriberEmail:
    value: str

    @classmethod
    def parse(cls, raw: str) -> SubscriberEmail:
        candidate = raw.strip()
        if not candidate:
            raise ValidationError("email must not be empty", field="email")
        try:
            info = validate_email(candidate, check_deliverability=False)
        except EmailNotValidError as exc:
            raise ValidationError(
                f"{_shorten(candidate)!r} is not a valid email address: {exc}", field="email"
            ) from None
        return cls(info.normalized)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class NewSubscriber:
    email: SubscriberEmail
    name: SubscriberName

    @classmethod
    def parse(cls, *, name: object, email: object) -> NewSubscriber:
        """Parse raw form/JSON values; every problem found is named in one error."""
        problems: list[ValidationError] = []
        parsed_name: SubscriberName | None = None
        parsed_email: SubscriberEmail | None = None
        try:
            parsed_name = SubscriberName.parse(_required_text(name, "name"))
        except ValidationError as exc:
            problems.append(exc)
        try:
            parsed_email = SubscriberEmail.parse(_required_text(email, "email"))
        except ValidationError as exc:
            problems.append(exc)
        if problems:
            field = problems[0].field if len(problems) == 1 else None
            raise ValidationError("; ".join(p.message for p in problems), field=field)
        assert parsed_name is not None
        assert parsed_email is not None
        return cls(email=parsed_email, name=parsed_name)


def _required_text(value: object, field: str) -> str:
    if value is None:
        raise ValidationError(f"{field} is missing", field=field)
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be a string", field=field)
    return value


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- confirmation tokens ---------------------------------------------------


def new_confirmation_token() -> str:
    """A fresh token: 32 characters from [A-Za-z0-9], about 190 bits from ``secrets``."""
    return "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(TOKEN_LENGTH))


def is_well_formed_token(token: str) -> bool:
    return _TOKEN_SHAPE.fullmatch(token) is not None


def hash_token(token: str) -> bytes:
    """Only this digest is stored, so a copy of the database confirms nobody."""
    return hashlib.sha256(token.encode("ascii")).digest()
