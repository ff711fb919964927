"""A pure-Python evaluation of a segment filter: the oracle the compiled SQL is held to
(tests/integration/test_segment_compiler.py) — same meaning, written without SQL."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from herald.segments.domain import (
    All,
    AnyOf,
    Attribute,
    CreatedAfter,
    CreatedBefore,
    CreatedWithin,
    EmailDomain,
    Filter,
    InList,
    Not,
    Op,
    StatusIn,
    ValueType,
)

_MISSING = object()
_DATE_PREFIX = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass
class Row:
    id: uuid.UUID
    email: str
    status: str
    created_at: datetime
    # Decoded with numbers as Decimal (as Postgres holds them).
    attributes: dict[str, Any]
    memberships: set[tuple[str, str]] = field(default_factory=set)


def matches(node: Filter, row: Row, now: datetime) -> bool:  # noqa: PLR0911 - one per kind
    match node:
        case All(parts):
            return all(matches(p, row, now) for p in parts)
        case AnyOf(parts):
            return any(matches(p, row, now) for p in parts)
        case Not(part):
            return not matches(part, row, now)
        case StatusIn(statuses):
            return row.status in statuses
        case InList(slug, status):
            return (slug, status) in row.memberships
        case CreatedBefore(at):
            return row.created_at < at
        case CreatedAfter(at):
            return row.created_at > at
        case CreatedWithin(days):
            return row.created_at >= now - timedelta(days=days)
        case EmailDomain(domain):
            return "@" in row.email and row.email.rsplit("@", 1)[1].lower() == domain
        case Attribute():
            return _attribute(node, row.attributes)
    raise AssertionError(node)


def _lookup(attributes: Any, path: tuple[str, ...]) -> Any:
    value = attributes
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return _MISSING
        value = value[key]
    return value


def _typed(value: Any, kind: ValueType) -> bool:
    if kind is ValueType.STRING:
        return isinstance(value, str)
    if kind is ValueType.NUMBER:
        return isinstance(value, Decimal)
    if kind is ValueType.BOOLEAN:
        return isinstance(value, bool)
    return isinstance(value, str) and _DATE_PREFIX.match(value) is not None


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def _attribute(node: Attribute, attributes: dict[str, Any]) -> bool:
    x = _lookup(attributes, node.path)
    if node.type is None:
        return x is not _MISSING and x is not None
    if x is _MISSING or not _typed(x, node.type):
        return False
    if node.op is Op.EXISTS:
        return True
    if node.type is ValueType.DATE:
        x = x[:10]
    if node.op is Op.IN:
        assert isinstance(node.value, tuple)
        return any(x == _plain(v) and type(x) is type(_plain(v)) for v in node.value)
    v = _plain(node.value)
    ops = {
        Op.EQ: lambda a, b: a == b,
        Op.NE: lambda a, b: a != b,
        Op.LT: lambda a, b: a < b,
        Op.LTE: lambda a, b: a <= b,
        Op.GT: lambda a, b: a > b,
        Op.GTE: lambda a, b: a >= b,
        Op.CONTAINS: lambda a, b: b in a,
        Op.STARTS_WITH: lambda a, b: a.startswith(b),
    }
    return bool(ops[node.op](x, v))
