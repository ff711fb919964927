"""A list's welcome email as the editor writes it: pure values and their rules."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from herald.core.errors import ValidationError

MAX_SUBJECT = 200
MAX_BODY = 20_000
DEFAULT_SUBJECT = "Welcome!"
DEFAULT_BODY = (
    "Hello {{ subscriber.name }},\n\nthank you for joining. Here is what to expect from us.\n"
)


@dataclass(frozen=True, slots=True)
class WelcomeDraft:
    """What the editor submitted: checked, trimmed."""

    enabled: bool
    subject: str
    body: str

    @classmethod
    def parse(cls, *, enabled: object, subject: object, body: object) -> WelcomeDraft:
        """A 400 naming the field for an empty or too long subject or body, or a subject
        of more than one line."""
        clean_subject = " ".join(_text(subject, "subject").split())
        if not clean_subject:
            raise ValidationError("the subject must not be empty", field="subject")
        if len(clean_subject) > MAX_SUBJECT:
            raise ValidationError(
                f"the subject is too long: at most {MAX_SUBJECT} characters", field="subject"
            )
        clean_body = _text(body, "body").replace("\r\n", "\n").strip()
        if not clean_body:
            raise ValidationError("the body must not be empty", field="body")
        if len(clean_body) > MAX_BODY:
            given = f"{len(clean_body):,} given"
            raise ValidationError(
                f"the body is too long: at most {MAX_BODY:,} characters ({given})", field="body"
            )
        return cls(enabled=_flag(enabled), subject=clean_subject, body=clean_body)


@dataclass(frozen=True, slots=True)
class Welcome:
    """A list's saved welcome email."""

    list_id: uuid.UUID
    enabled: bool
    subject: str
    body: str
    updated_at: datetime


def _text(value: object, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be a string", field=field)
    return value


def _flag(value: object) -> bool:
    """A checkbox: present ("on", "true", "1", "yes") or absent."""
    if isinstance(value, bool):
        return value
    return isinstance(value, str) and value.strip().lower() in {"on", "true", "1", "yes"}
