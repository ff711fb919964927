"""A list's welcome email as the editor writes it: pure values and their rules."""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from herald.core.errors import ValidationError

MAX_SUBJECT = 200
MAX_BODY = 20_000
DEFAULT_SUBJECT = "Welcome!"
DEFAULT_BODY = (
    "Hello {{ subscriber.name }},\n\nthank you for joining. Here is what to expect from us.\n"
)

_OPENER = re.compile(r"\{[{%#]")
_CLOSER = {"{": "}}", "%": "%}", "#": "#}"}
_PLACEHOLDER = re.compile(r"hj[0-9a-f]{8}n[0-9]+x")


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


def protect_template(source: str) -> tuple[str, dict[str, str]]:
    """``source`` with every Jinja construct (``{{ … }}``, ``{% … %}``, ``{# … #}``)
    swapped for a word-like placeholder, so that Markdown leaves them alone (it would
    escape the quotes of ``default("friend")`` into ``&quot;``, a template error), and the
    placeholders to put back."""
    nonce = secrets.token_hex(4)
    originals: dict[str, str] = {}
    out: list[str] = []
    position = 0
    for start, end in _constructs(source):
        key = f"hj{nonce}n{len(originals)}x"
        originals[key] = source[start:end]
        out.append(source[position:start])
        out.append(key)
        position = end
    out.append(source[position:])
    return "".join(out), originals


def restore_template(text: str, originals: dict[str, str]) -> str:
    """The placeholders of :func:`protect_template` replaced by their constructs again."""
    if not originals:
        return text
    return _PLACEHOLDER.sub(lambda m: originals.get(m.group(), m.group()), text)


def _constructs(source: str) -> Iterator[tuple[int, int]]:
    position = 0
    while (opener := _OPENER.search(source, position)) is not None:
        end = source.find(_CLOSER[opener.group()[1]], opener.end())
        if end < 0:
            return
        yield opener.start(), end + 2
        position = end + 2
