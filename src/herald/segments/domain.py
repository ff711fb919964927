"""A segment's filter as values: the JSON an editor or API client writes, parsed into frozen
dataclasses that can only exist when valid ("parse, don't validate").

The JSON shapes (``docs/API.md``, "Segments", says the same for clients):

* ``{"all": [f, …]}``, ``{"any": [f, …]}`` (1 to 50 parts), ``{"not": f}``;
* ``{"status": ["confirmed", …]}``: the subscription's (address-level) status is one of;
* ``{"list": "<slug>", "status": "confirmed"}``: a membership of that list with that
  status (``confirmed`` when left out);
* ``{"attribute": "city", "op": "eq", "type": "string", "value": "Paris"}``: an
  attribute (a top-level key, or a dotted path into nested objects: ``address.city``)
  compared as ``type`` (string, number, boolean, date: a string starting ``YYYY-MM-DD``);
  ``op`` one of :class:`Op`, ``in`` takes a list of values, ``exists`` none. A comparison
  is false when the attribute is missing or holds another type (``ne`` too: use ``not``
  for "anything but");
* ``{"created_at": {"before": "<ISO time>"}}``, ``{"created_at": {"after": …}}``,
  ``{"created_at": {"within_days": N}}``: the sign-up time;
* ``{"email_domain": "example.com"}``: the address's domain (any case);
* ``{"engagement": "opened", "within_days": N}`` (or ``"clicked"``): the reader opened an
  issue (clicked a link in one) within the last N days, as opt-in engagement tracking
  recorded it (``engagement/``). Opens by a mail client's privacy proxy or a link
  scanner (Apple Mail Privacy Protection, security gateways) are not a reader's and do
  not count; issues sent without tracking record nothing, so a reader of those is
  "not opened".

Limits: nesting depth ≤ :data:`MAX_DEPTH` (a condition at the top is depth 1), at most
:data:`MAX_CONDITIONS` conditions, strings ≤ :data:`MAX_STRING` characters, ``in`` lists
≤ :data:`MAX_IN_VALUES`. A filter over them, of an unknown shape or with a value of the
wrong type is a :class:`~herald.core.errors.ValidationError` naming the place
(``filter.all[2].value``), never a ``RecursionError``: the parser stops at the depth
limit before it looks further down.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypeAlias

from herald.core.errors import ValidationError

MAX_DEPTH = 5
MAX_CONDITIONS = 50
MAX_STRING = 500
MAX_IN_VALUES = 100
MAX_DAYS = 36_500
MAX_PATH_PARTS = 5
# Numbers a filter may compare with: finite, and small enough to be exact in a double.
MAX_NUMBER = 10**15
STATUSES = ("pending_confirmation", "confirmed", "unsubscribed")
KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
SLUG = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
DOMAIN = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")
DATE_SHAPE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
FIELD = "filter"


class Op(StrEnum):
    EQ = "eq"
    NE = "ne"
    LT = "lt"
    LTE = "lte"
    GT = "gt"
    GTE = "gte"
    CONTAINS = "contains"
    STARTS_WITH = "starts_with"
    EXISTS = "exists"
    IN = "in"


class ValueType(StrEnum):
    STRING = "string"
    NUMBER = "number"
    BOOLEAN = "boolean"
    DATE = "date"


ORDERED = frozenset({Op.LT, Op.LTE, Op.GT, Op.GTE})
OPS_BY_TYPE: dict[ValueType, tuple[Op, ...]] = {
    ValueType.STRING: tuple(Op),
    ValueType.NUMBER: (Op.EQ, Op.NE, Op.LT, Op.LTE, Op.GT, Op.GTE, Op.EXISTS, Op.IN),
    ValueType.BOOLEAN: (Op.EQ, Op.NE, Op.EXISTS),
    ValueType.DATE: (Op.EQ, Op.NE, Op.LT, Op.LTE, Op.GT, Op.GTE, Op.EXISTS, Op.IN),
}

# A compared value: str (string), Decimal (number), bool, date; a tuple of them for ``in``;
# None for ``exists``.
Scalar: TypeAlias = str | Decimal | bool | date
Value: TypeAlias = Scalar | tuple[Scalar, ...] | None


@dataclass(frozen=True, slots=True)
class All:
    parts: tuple[Filter, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    parts: tuple[Filter, ...]


@dataclass(frozen=True, slots=True)
class Not:
    part: Filter


@dataclass(frozen=True, slots=True)
class StatusIn:
    statuses: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class InList:
    slug: str
    status: str = "confirmed"


@dataclass(frozen=True, slots=True)
class Attribute:
    path: tuple[str, ...]
    op: Op
    # None only for ``exists`` without a type: present, of any type but JSON null.
    type: ValueType | None
    value: Value = None

    @property
    def name(self) -> str:
        return ".".join(self.path)


@dataclass(frozen=True, slots=True)
class CreatedBefore:
    at: datetime


@dataclass(frozen=True, slots=True)
class CreatedAfter:
    at: datetime


@dataclass(frozen=True, slots=True)
class CreatedWithin:
    days: int


@dataclass(frozen=True, slots=True)
class EmailDomain:
    domain: str


class Engagement(StrEnum):
    OPENED = "opened"
    CLICKED = "clicked"


@dataclass(frozen=True, slots=True)
class Engaged:
    """Opened (or clicked in) a tracked issue within the last ``days`` days."""

    action: Engagement
    days: int


Condition: TypeAlias = (
    StatusIn
    | InList
    | Attribute
    | CreatedBefore
    | CreatedAfter
    | CreatedWithin
    | EmailDomain
    | Engaged
)
Filter: TypeAlias = All | AnyOf | Not | Condition
GROUPS = ("all", "any", "not")


def parse_filter(raw: object) -> Filter:
    """The filter ``raw`` (decoded JSON) stands for, or ValidationError naming the place."""
    counter = [0]
    return _parse(raw, 1, FIELD, counter)


def _fail(where: str, message: str) -> ValidationError:
    return ValidationError(f"{where}: {message}", field=FIELD)


def _parse(raw: object, depth: int, where: str, counter: list[int]) -> Filter:
    if depth > MAX_DEPTH:
        raise _fail(where, f"nested too deeply (at most {MAX_DEPTH} levels)")
    if not isinstance(raw, dict) or not raw:
        raise _fail(where, 'must be a JSON object such as {"status": ["confirmed"]}')
    if len(raw) == 1 and next(iter(raw)) in GROUPS:
        ((key, inner),) = raw.items()
        if key == "not":
            return Not(_parse(inner, depth + 1, f"{where}.not", counter))
        if not isinstance(inner, list) or not 1 <= len(inner) <= MAX_CONDITIONS:
            raise _fail(f"{where}.{key}", f"must be a list of 1 to {MAX_CONDITIONS} filters")
        parts = tuple(
            _parse(part, depth + 1, f"{where}.{key}[{i}]", counter) for i, part in enumerate(inner)
        )
        return All(parts) if key == "all" else AnyOf(parts)
    counter[0] += 1
    if counter[0] > MAX_CONDITIONS:
        raise _fail(where, f"a filter holds at most {MAX_CONDITIONS} conditions")
    return _condition(raw, where)


def _keys(raw: dict[str, Any], where: str, required: set[str], optional: set[str]) -> None:
    keys = set(raw)
    if missing := sorted(required - keys):
        raise _fail(where, f"missing {', '.join(missing)}")
    if extra := sorted(keys - required - optional):
        raise _fail(where, f"unknown key {_short(extra[0])!r}")


def _condition(raw: dict[str, Any], where: str) -> Condition:
    if "attribute" in raw:
        return _attribute(raw, where)
    if "list" in raw:
        _keys(raw, where, {"list"}, {"status"})
        slug = _string(raw["list"], f"{where}.list", limit=60)
        if not SLUG.fullmatch(slug):
            raise _fail(f"{where}.list", "is not a list slug (lowercase letters, digits, -)")
        status = raw.get("status", "confirmed")
        if status not in STATUSES:
            raise _fail(f"{where}.status", f"must be one of {', '.join(STATUSES)}")
        return InList(slug, status)
    if "status" in raw:
        _keys(raw, where, {"status"}, set())
        value = raw["status"]
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not values or any(v not in STATUSES for v in values):
            raise _fail(f"{where}.status", f"must be a list of: {', '.join(STATUSES)}")
        return StatusIn(tuple(sorted(set(values))))
    if "created_at" in raw:
        _keys(raw, where, {"created_at"}, set())
        return _created(raw["created_at"], f"{where}.created_at")
    if "email_domain" in raw:
        _keys(raw, where, {"email_domain"}, set())
        domain = _string(raw["email_domain"], f"{where}.email_domain", limit=253).lower()
        if not DOMAIN.fullmatch(domain):
            raise _fail(f"{where}.email_domain", "is not a domain name (example.com)")
        return EmailDomain(domain)
    if "engagement" in raw:
        _keys(raw, where, {"engagement", "within_days"}, set())
        action = raw["engagement"]
        if action not in Engagement.__members__.values():
            raise _fail(f"{where}.engagement", "must be opened or clicked")
        days = raw["within_days"]
        if not _is_int(days) or not 1 <= days <= MAX_DAYS:
            raise _fail(f"{where}.within_days", f"must be a whole number from 1 to {MAX_DAYS}")
        return Engaged(Engagement(action), int(days))
    raise _fail(
        where,
        f"unknown condition {_short(next(iter(raw)))!r}: use all, any, not, status, list, "
        "attribute, created_at, email_domain or engagement",
    )


def _created(raw: object, where: str) -> Condition:
    if not isinstance(raw, dict) or len(raw) != 1:
        raise _fail(where, 'must be one of {"before": T}, {"after": T}, {"within_days": N}')
    ((key, value),) = raw.items()
    if key == "within_days":
        if not _is_int(value) or not 1 <= value <= MAX_DAYS:
            raise _fail(f"{where}.within_days", f"must be a whole number from 1 to {MAX_DAYS}")
        return CreatedWithin(int(value))
    if key not in ("before", "after"):
        raise _fail(where, f"unknown key {_short(str(key))!r}: use before, after or within_days")
    at = _timestamp(value, f"{where}.{key}")
    return CreatedBefore(at) if key == "before" else CreatedAfter(at)


def _timestamp(value: object, where: str) -> datetime:
    text = _string(value, where, limit=40)
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise _fail(where, "must be an ISO 8601 time with a time zone (2026-01-31T12:00:00Z)")
    try:
        return at.astimezone(UTC)
    except (OverflowError, ValueError):
        raise _fail(where, "is out of range") from None


def _attribute(raw: dict[str, Any], where: str) -> Attribute:
    _keys(raw, where, {"attribute", "op"}, {"type", "value"})
    path = parse_path(raw["attribute"], f"{where}.attribute")
    op_raw = raw["op"]
    if op_raw not in Op.__members__.values():
        raise _fail(f"{where}.op", f"must be one of {', '.join(Op)}")
    op = Op(op_raw)
    if op is Op.EXISTS and "value" in raw:
        raise _fail(f"{where}.value", "exists takes no value")
    if op is Op.EXISTS and raw.get("type") is None:
        return Attribute(path, op, None)  # present, of any type but JSON null
    type_raw = raw.get("type", ValueType.STRING.value)
    if type_raw not in ValueType.__members__.values():
        raise _fail(f"{where}.type", f"must be one of {', '.join(ValueType)}")
    kind = ValueType(type_raw)
    if op not in OPS_BY_TYPE[kind]:
        allowed = ", ".join(OPS_BY_TYPE[kind])
        raise _fail(f"{where}.op", f"{op} does not apply to a {kind}: use {allowed}")
    if op is Op.EXISTS:
        return Attribute(path, op, kind)
    if "value" not in raw:
        raise _fail(where, "missing value")
    value = raw["value"]
    if op is Op.IN:
        if not isinstance(value, list) or not 1 <= len(value) <= MAX_IN_VALUES:
            raise _fail(f"{where}.value", f"must be a list of 1 to {MAX_IN_VALUES} values")
        items = tuple(_scalar(v, kind, f"{where}.value[{i}]") for i, v in enumerate(value))
        return Attribute(path, op, kind, tuple(dict.fromkeys(items)))
    return Attribute(path, op, kind, _scalar(value, kind, f"{where}.value"))


def parse_path(raw: object, where: str) -> tuple[str, ...]:
    text = _string(raw, where, limit=MAX_PATH_PARTS * 65)
    parts = tuple(text.split("."))
    if len(parts) > MAX_PATH_PARTS or not all(KEY.fullmatch(p) for p in parts):
        raise _fail(
            where,
            "must be an attribute name (letters, digits, _; not starting with a digit; "
            f"at most 64 characters), or up to {MAX_PATH_PARTS} such names joined by dots",
        )
    return parts


def _scalar(value: object, kind: ValueType, where: str) -> Scalar:
    if kind is ValueType.STRING:
        return _string(value, where, limit=MAX_STRING)
    if kind is ValueType.BOOLEAN:
        if not isinstance(value, bool):
            raise _fail(where, "must be true or false")
        return value
    if kind is ValueType.NUMBER:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _fail(where, "must be a number")
        if (isinstance(value, float) and not math.isfinite(value)) or abs(value) > MAX_NUMBER:
            raise _fail(where, f"must be a number between -{MAX_NUMBER} and {MAX_NUMBER}")
        return Decimal(str(value))
    text = _string(value, where, limit=10)
    try:
        day = date.fromisoformat(text) if DATE_SHAPE.fullmatch(text) else None
    except ValueError:
        day = None
    if day is None:
        raise _fail(where, "must be a date written YYYY-MM-DD")
    return day


def _string(value: object, where: str, *, limit: int) -> str:
    if not isinstance(value, str):
        raise _fail(where, "must be a string")
    if len(value) > limit:
        raise _fail(where, f"is longer than {limit} characters")
    if "\x00" in value:
        raise _fail(where, "holds a NUL character")
    return value


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
