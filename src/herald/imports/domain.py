"""What an import is: its mode, its column mapping, and one row made into a subscriber.

Rows are checked with the subscriptions domain's rules (``SubscriberEmail``,
``SubscriberName``): an import accepts exactly the addresses and names the sign-up form
accepts. Parsing an address with ``email_validator`` costs ~50 µs, a name ~17 µs: a
million rows would spend over a minute there. So the common shapes take a fast path
that gives the same answer — a plain ASCII dot-atom address (its domain checked once by
``email_validator`` and remembered), a printable ASCII name — and everything else goes
through the domain's parsers (``tests/unit/test_import_rows.py`` holds the two to the
same results).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from typing import Any

from herald.core.errors import ValidationError
from herald.segments.attributes import MAX_BYTES, check_key
from herald.subscriptions.domain import (
    FORBIDDEN_NAME_CHARACTERS,
    MAX_NAME_GRAPHEMES,
    SubscriberEmail,
    SubscriberName,
)

KIND = "subscribers.import"
MAX_ATTRIBUTES = 50
MAX_ATTRIBUTE_KEY = 64
MAX_ATTRIBUTE_VALUE = 1000
MAX_ATTRIBUTES_JSON = MAX_BYTES
MAX_COLUMNS = 200
_NOT_KEY = re.compile(r"[^a-z0-9_]+")
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
EMAIL_HEADERS = frozenset({"email", "e-mail", "email address", "e-mail address", "mail"})
NAME_HEADERS = frozenset({"name", "full name", "fullname"})


class Mode(StrEnum):
    CONFIRMED = "confirmed"  # the operator attests consent: confirmed members, no email
    OPT_IN = "opt_in"  # each new member gets a confirmation email

    @classmethod
    def parse(cls, raw: str) -> Mode:
        value = raw.strip().lower().replace("-", "_")
        try:
            return cls(value or "opt_in")
        except ValueError:
            raise ValidationError("mode must be confirmed or opt-in", field="mode") from None


class Role(StrEnum):
    EMAIL = "email"
    NAME = "name"
    ATTRIBUTE = "attribute"
    IGNORE = "ignore"

    @classmethod
    def parse(cls, raw: str, field: str) -> Role:
        try:
            return cls(raw.strip().lower())
        except ValueError:
            raise ValidationError(
                "a column's role must be email, name, attribute or ignore", field=field
            ) from None


@dataclass(frozen=True, slots=True)
class Column:
    index: int
    header: str
    role: Role

    @property
    def key(self) -> str:
        """The attribute key of an attribute column: its header, lower case, each run of
        characters an attribute name cannot hold made ``_`` (``Sign-up date`` →
        ``sign_up_date``)."""
        return attribute_key(self.header)


def attribute_key(header: str) -> str:
    key = _NOT_KEY.sub("_", header.strip().lower()).strip("_")[:MAX_ATTRIBUTE_KEY]
    return f"_{key}"[:MAX_ATTRIBUTE_KEY] if key[:1].isdigit() else key


@dataclass(frozen=True, slots=True)
class Mapping:
    """One role per column of the header row; exactly one column holds the email."""

    columns: tuple[Column, ...]
    # Looked up for every row: worked out once.
    email_index: int = field(init=False)
    name_index: int | None = field(init=False)
    attributes: tuple[tuple[int, str], ...] = field(init=False)

    def __post_init__(self) -> None:
        email = [c.index for c in self.columns if c.role is Role.EMAIL]
        name = [c.index for c in self.columns if c.role is Role.NAME]
        set_ = object.__setattr__
        set_(self, "email_index", email[0] if email else 0)
        set_(self, "name_index", name[0] if name else None)
        set_(
            self,
            "attributes",
            tuple((c.index, c.key) for c in self.columns if c.role is Role.ATTRIBUTE),
        )

    @classmethod
    def guess(cls, header: list[str]) -> Mapping:
        """The CLI's mapping: ``email`` (and the like), ``name``, every other column an
        attribute. :class:`ValidationError` when no column is the email."""
        roles: list[Role] = []
        for cell in header:
            key = cell.strip().lower()
            if key in EMAIL_HEADERS and Role.EMAIL not in roles:
                roles.append(Role.EMAIL)
            elif key in NAME_HEADERS and Role.NAME not in roles:
                roles.append(Role.NAME)
            elif not key:
                roles.append(Role.IGNORE)
            else:
                roles.append(Role.ATTRIBUTE)
        if Role.EMAIL not in roles:
            raise ValidationError(
                "the CSV has no email column: its header row must name one column "
                f"'email' (found: {_shown(header)})",
                field="file",
            )
        return cls.of(header, roles)

    @classmethod
    def of(cls, header: list[str], roles: list[Role]) -> Mapping:
        if len(header) > MAX_COLUMNS:
            raise ValidationError(f"the CSV has more than {MAX_COLUMNS} columns", field="file")
        if len(roles) != len(header):
            raise ValidationError("choose a role for every column", field="columns")
        if roles.count(Role.EMAIL) != 1:
            raise ValidationError("choose exactly one email column", field="columns")
        if roles.count(Role.NAME) > 1:
            raise ValidationError("choose at most one name column", field="columns")
        named = [(h, attribute_key(h)) for h, r in zip(header, roles, strict=True)]
        keys = [key for (_, key), r in zip(named, roles, strict=True) if r is Role.ATTRIBUTE]
        for (shown, key), role in zip(named, roles, strict=True):
            if role is Role.ATTRIBUTE:
                _check_key(shown, key)
        if len(set(keys)) != len(keys):
            raise ValidationError("two attribute columns have the same name", field="columns")
        if len(keys) > MAX_ATTRIBUTES:
            raise ValidationError(f"at most {MAX_ATTRIBUTES} attribute columns", field="columns")
        columns = tuple(Column(i, h, r) for i, (h, r) in enumerate(zip(header, roles, strict=True)))
        return cls(columns)

    def to_json(self) -> list[str]:
        return [c.role.value for c in self.columns]

    @classmethod
    def from_json(cls, header: list[str], raw: Any) -> Mapping:
        return cls.of(header, [Role.parse(str(r), "columns") for r in raw])


def _check_key(header: str, key: str) -> None:
    if not key:
        raise ValidationError(
            f"the attribute column {header[:40]!r} needs a name made of letters or digits",
            field="columns",
        )
    check_key(key)


def _shown(header: list[str]) -> str:
    text = ", ".join(repr(h[:40]) for h in header[:10])
    return text + (", …" if len(header) > 10 else "") if header else "nothing"


@dataclass(frozen=True, slots=True)
class Row:
    """A valid row: the address (normalised as the form does), the name (None: no name
    given, keep the existing one) and the attributes to merge (as a JSON object text)."""

    line: int
    email: str
    name: str | None
    attributes: str


class RowError(ValueError):
    """A row that cannot be imported; the message names the problem for the error report."""

    def __init__(self, message: str, email: str | None = None) -> None:
        super().__init__(message)
        self.email = email


def parse_row(mapping: Mapping, line: int, cells: list[str]) -> Row:
    """The row of ``cells``; :class:`RowError` naming the problem."""
    width = len(mapping.columns)
    if len(cells) > width:
        raise RowError(
            f"the row has {len(cells)} fields, the header {width}", _email_of(mapping, cells)
        )
    raw_email = cells[mapping.email_index] if mapping.email_index < len(cells) else ""
    try:
        email = parse_email(raw_email)
    except ValidationError as exc:
        raise RowError(exc.message, raw_email[:320] or None) from None
    name: str | None = None
    index = mapping.name_index
    if index is not None and index < len(cells) and cells[index].strip():
        try:
            name = parse_name(cells[index])
        except ValidationError as exc:
            raise RowError(exc.message, email) from None
    attributes: dict[str, str] = {}
    for i, key in mapping.attributes:
        if i < len(cells) and cells[i] != "":
            value = cells[i]
            if "\x00" in value:
                raise RowError(f"attribute {key!r} holds a NUL character", email)
            if len(value) > MAX_ATTRIBUTE_VALUE:
                raise RowError(
                    f"attribute {key!r} is longer than {MAX_ATTRIBUTE_VALUE} characters", email
                )
            attributes[key] = value
    encoded = _JSON.encode(attributes)
    # The limit is in bytes of UTF-8, as ``segments.attributes`` counts it: a character
    # may take four.
    if len(encoded) * 4 > MAX_ATTRIBUTES_JSON and len(encoded.encode()) > MAX_ATTRIBUTES_JSON:
        raise RowError(f"the attributes are over {MAX_ATTRIBUTES_JSON // 1024} KiB", email)
    return Row(line, email, name, encoded)


def _email_of(mapping: Mapping, cells: list[str]) -> str | None:
    i = mapping.email_index
    return cells[i][:320] if i < len(cells) and cells[i] else None


# -- the fast paths ------------------------------------------------------------

# An unquoted ASCII local part (RFC 5322 dot-atom) and an LDH domain with a dot.
_FAST_EMAIL = re.compile(
    r"([A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*)"
    r"@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)"
)
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")


@lru_cache(maxsize=4096)
def _domain(domain: str) -> str:
    """The normalised domain (``email_validator``'s answer for any local part of the fast
    shape), or ValidationError."""
    return SubscriberEmail.parse(f"a@{domain}").value.split("@", 1)[1]


def parse_email(raw: str) -> str:
    """``SubscriberEmail.parse(raw).value``, faster for plain ASCII addresses."""
    candidate = raw.strip()
    match = _FAST_EMAIL.fullmatch(candidate)
    if match is None or len(match.group(1)) > 64 or len(candidate) > 254:
        return SubscriberEmail.parse(raw).value
    try:
        domain = _domain(match.group(2))
    except ValidationError:
        return SubscriberEmail.parse(raw).value  # the full message, for this address
    return f"{match.group(1)}@{domain}"


def parse_name(raw: str) -> str:
    """``SubscriberName.parse(raw).value``, faster for printable ASCII names."""
    name = raw.strip()
    if (
        name
        and len(name) <= MAX_NAME_GRAPHEMES
        and _PRINTABLE_ASCII.fullmatch(name)
        and FORBIDDEN_NAME_CHARACTERS.isdisjoint(name)
    ):
        return name
    return SubscriberName.parse(raw).value


@dataclass(frozen=True, slots=True)
class Counts:
    imported: int = 0
    updated: int = 0
    skipped: int = 0
    rejected: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.imported + other.imported,
            self.updated + other.updated,
            self.skipped + other.skipped,
            self.rejected + other.rejected,
        )

    def summary(self) -> str:
        return (
            f"{self.imported:,} imported, {self.updated:,} updated, "
            f"{self.skipped:,} skipped (suppressed), {self.rejected:,} rejected"
        )
