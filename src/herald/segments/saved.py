"""What is saved of a segment: its name and its filter as normalised JSON (``to_json``:
what the database holds and the API shows; ``parse_filter`` of it gives the filter back)."""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from herald.core.errors import ValidationError
from herald.segments.domain import (
    All,
    AnyOf,
    Attribute,
    CreatedAfter,
    CreatedBefore,
    CreatedWithin,
    EmailDomain,
    Engaged,
    Filter,
    InList,
    Not,
    Op,
    StatusIn,
    Value,
    parse_filter,
)

MAX_NAME = 100


def to_json(node: Filter) -> dict[str, Any]:  # noqa: PLR0911, PLR0912 - one per kind of node
    """The JSON of a parsed filter (what is stored and shown): ``parse_filter`` of it gives
    ``node`` back."""
    match node:
        case All(parts):
            return {"all": [to_json(p) for p in parts]}
        case AnyOf(parts):
            return {"any": [to_json(p) for p in parts]}
        case Not(part):
            return {"not": to_json(part)}
        case StatusIn(statuses):
            return {"status": list(statuses)}
        case InList(slug, status):
            return {"list": slug, "status": status}
        case CreatedBefore(at):
            return {"created_at": {"before": at.isoformat()}}
        case CreatedAfter(at):
            return {"created_at": {"after": at.isoformat()}}
        case CreatedWithin(days):
            return {"created_at": {"within_days": days}}
        case EmailDomain(domain):
            return {"email_domain": domain}
        case Engaged(action, days):
            return {"engagement": action.value, "within_days": days}
        case Attribute(path, op, kind, value):
            out: dict[str, Any] = {"attribute": ".".join(path), "op": op.value}
            if kind is not None:
                out["type"] = kind.value
            if op is not Op.EXISTS:
                out["value"] = (
                    [_json_scalar(v) for v in value]
                    if isinstance(value, tuple)
                    else _json_scalar(value)
                )
            return out
    raise AssertionError(f"not a filter: {node!r}")


def _json_scalar(value: Value) -> object:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def conditions(node: Filter) -> int:
    """How many conditions ``node`` holds."""
    match node:
        case All(parts) | AnyOf(parts):
            return sum(conditions(p) for p in parts)
        case Not(part):
            return conditions(part)
    return 1


@dataclass(frozen=True, slots=True)
class SegmentDraft:
    """A segment as saved: a name (1 to 100 characters, unique) and its filter."""

    name: str
    filter: Filter

    @classmethod
    def parse(cls, *, name: object, filter: object) -> SegmentDraft:
        if not isinstance(name, str):
            raise ValidationError("name must be a string", field="name")
        text = unicodedata.normalize("NFC", name.strip())
        if not 1 <= len(text) <= MAX_NAME:
            raise ValidationError(f"name must be 1 to {MAX_NAME} characters", field="name")
        if any(unicodedata.category(ch) == "Cc" for ch in text):
            raise ValidationError("name holds a control character", field="name")
        return cls(text, parse_filter(filter))

    def json(self) -> str:
        return json.dumps(to_json(self.filter), separators=(",", ":"), ensure_ascii=False)
