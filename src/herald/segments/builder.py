"""The admin's segment builder as values: rows of conditions (field, operator, value) with
an all/any switch, read from and written to a plain form, so adding or removing a row is a
form submit that works without JavaScript.

A filter the rows cannot show (nested groups, several statuses in one condition …) is
edited as JSON instead (``mode = "json"``); every filter the rows make is a filter of
:mod:`.domain`, validated by ``parse_filter`` with its messages turned from
``filter.all[2].value`` into "Condition 3".
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from herald.core.errors import ValidationError
from herald.segments.domain import MAX_CONDITIONS, STATUSES, Op, ValueType, parse_filter
from herald.segments.saved import conditions, to_json


class Field(StrEnum):
    STATUS = "status"
    LIST = "list"
    ATTRIBUTE = "attribute"
    CREATED = "created_at"
    DOMAIN = "email_domain"
    ENGAGEMENT = "engagement"


FIELD_LABELS = {
    Field.STATUS: "Status",
    Field.LIST: "List",
    Field.ATTRIBUTE: "Attribute",
    Field.CREATED: "Sign-up date",
    Field.DOMAIN: "Email domain",
    Field.ENGAGEMENT: "Engagement",
}
NOT_CONFIRMED = "not_confirmed"
OPS: dict[Field, list[tuple[str, str]]] = {
    Field.STATUS: [("is", "is"), ("is_not", "is not")],
    Field.LIST: [
        ("confirmed", "is a confirmed member of"),
        ("pending_confirmation", "is a pending member of"),
        ("unsubscribed", "has unsubscribed from"),
        (NOT_CONFIRMED, "is not a confirmed member of"),
    ],
    Field.ATTRIBUTE: [
        (Op.EQ, "equals"),
        (Op.NE, "does not equal"),
        (Op.LT, "is less than"),
        (Op.LTE, "is at most"),
        (Op.GT, "is more than"),
        (Op.GTE, "is at least"),
        (Op.CONTAINS, "contains"),
        (Op.STARTS_WITH, "starts with"),
        (Op.IN, "is one of"),
        (Op.EXISTS, "is set"),
    ],
    Field.CREATED: [
        ("before", "before"),
        ("after", "after"),
        ("within_days", "within the last … days"),
    ],
    Field.DOMAIN: [("is", "is"), ("is_not", "is not")],
    Field.ENGAGEMENT: [
        ("opened", "opened an issue within the last … days"),
        ("not_opened", "did not open an issue within the last … days"),
        ("clicked", "clicked a link within the last … days"),
        ("not_clicked", "did not click a link within the last … days"),
    ],
}
TYPES = [("string", "text"), ("number", "number"), ("boolean", "true/false"), ("date", "date")]
_PLACE = re.compile(r"filter\.(?:all|any)\[(\d+)\][^:]*:")
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DAYS = re.compile(r"[0-9]{1,6}")  # the domain bounds the number (MAX_DAYS)


@dataclass(frozen=True, slots=True)
class Row:
    field: Field
    op: str = ""
    key: str = ""  # the attribute's name
    type: str = "string"  # the attribute's type; "" for "is set" of any type
    value: str = ""


@dataclass(frozen=True, slots=True)
class Builder:
    name: str = ""
    match: str = "all"
    rows: tuple[Row, ...] = ()
    json_text: str = ""
    mode: str = "rows"

    @classmethod
    def from_form(cls, fields: Mapping[str, str]) -> Builder:
        rows = []
        for i in range(MAX_CONDITIONS):
            kind = fields.get(f"field_{i}")
            if kind is None:
                break
            if kind not in Field.__members__.values():
                raise ValidationError(f"Condition {i + 1}: unknown field", field=f"field_{i}")
            rows.append(
                Row(
                    Field(kind),
                    fields.get(f"op_{i}", ""),
                    fields.get(f"key_{i}", "").strip(),
                    fields.get(f"type_{i}", "string"),
                    fields.get(f"value_{i}", "").strip(),
                )
            )
        return cls(
            name=fields.get("name", ""),
            match="any" if fields.get("match") == "any" else "all",
            rows=tuple(rows),
            json_text=fields.get("json_text", ""),
            mode="json" if fields.get("mode") == "json" else "rows",
        )

    @classmethod
    def from_filter(cls, name: str, raw: object) -> Builder:
        """A builder showing the filter ``raw`` (validated): as rows when it is flat enough."""
        normal = to_json(parse_filter(raw))
        text = json.dumps(normal, indent=2, ensure_ascii=False)
        match, parts = "all", [normal]
        if set(normal) <= {"all", "any"}:
            match, parts = next(iter(normal.items()))
        rows = [_row(part) for part in parts]
        if any(row is None for row in rows):
            return cls(name=name, json_text=text, mode="json")
        return cls(name, match, tuple(r for r in rows if r is not None), text, "rows")

    def with_row(self, kind: str) -> Builder:
        if kind not in Field.__members__.values():
            raise ValidationError("Choose what the new condition is about", field="new_field")
        if len(self.rows) >= MAX_CONDITIONS:
            raise ValidationError(f"At most {MAX_CONDITIONS} conditions", field="new_field")
        field = Field(kind)
        value = "confirmed" if field is Field.STATUS else ""
        return replace(self, rows=(*self.rows, Row(field, OPS[field][0][0], value=value)))

    def without_row(self, index: int) -> Builder:
        return replace(self, rows=tuple(r for i, r in enumerate(self.rows) if i != index))

    def filter_json(self) -> dict[str, Any]:
        """The filter of the rows (or of the JSON, in JSON mode), validated."""
        if self.mode == "json":
            raise AssertionError("parse the JSON text first")  # the caller's job: see routes
        if not self.rows:
            raise ValidationError("Add at least one condition", field="new_field")
        parts = [_condition(i, row) for i, row in enumerate(self.rows)]
        raw = {self.match: parts}
        try:
            return to_json(parse_filter(raw))
        except ValidationError as exc:
            message = _PLACE.sub(lambda m: f"Condition {int(m.group(1)) + 1}:", exc.message)
            raise ValidationError(message.removeprefix("filter: "), field="filter") from None


def describe(raw: dict[str, Any]) -> str:
    """A filter in a line of words, for lists: its rows joined by "and"/"or", or, for one
    the rows cannot show, how many conditions it holds."""
    builder = Builder.from_filter("", raw)
    if builder.mode == "json":
        count = conditions(parse_filter(raw))
        return f"{count} condition{'s' if count != 1 else ''} in nested groups"
    joiner = " and " if builder.match == "all" else " or "
    return joiner.join(_words(row) for row in builder.rows)


def _words(row: Row) -> str:  # noqa: PLR0911 - one per field
    op = dict(OPS[row.field]).get(row.op, row.op)
    if row.field is Field.ATTRIBUTE:
        value = "" if row.op == Op.EXISTS else f" {row.value}"
        return f"{row.key} {op}{value}"
    if row.field is Field.STATUS:
        return f"status {op} {row.value.replace('_confirmation', '')}"
    if row.field is Field.CREATED:
        if row.op == "within_days":
            return f"signed up within the last {row.value} days"
        return f"signed up {op} {row.value[:10]}"
    if row.field is Field.DOMAIN:
        return f"email domain {op} {row.value}"
    if row.field is Field.ENGAGEMENT:
        return op.replace("…", row.value)
    return f"{op} {row.value}"


def _fail(i: int, message: str) -> ValidationError:
    return ValidationError(f"Condition {i + 1}: {message}", field=f"value_{i}")


def _condition(i: int, row: Row) -> dict[str, Any]:
    negated = row.op in ("is_not", NOT_CONFIRMED)
    if row.field is Field.STATUS:
        if row.value not in STATUSES:
            raise _fail(i, "choose a status")
        inner: dict[str, Any] = {"status": [row.value]}
    elif row.field is Field.LIST:
        if not row.value:
            raise _fail(i, "choose a list")
        status = "confirmed" if negated else row.op
        inner = {"list": row.value, "status": status}
    elif row.field is Field.DOMAIN:
        inner = {"email_domain": row.value.lower()}
    elif row.field is Field.CREATED:
        return {"created_at": _created(i, row)}
    elif row.field is Field.ENGAGEMENT:
        if not _DAYS.fullmatch(row.value):
            raise _fail(i, "write a number of days")
        negated = row.op.startswith("not_")
        inner = {"engagement": row.op.removeprefix("not_"), "within_days": int(row.value)}
    else:
        return _attribute(i, row)
    return {"not": inner} if negated else inner


def _created(i: int, row: Row) -> dict[str, Any]:
    if row.op == "within_days":
        if not _DAYS.fullmatch(row.value):  # not isdigit(): int("²") raises
            raise _fail(i, "write a number of days")
        return {"within_days": int(row.value)}
    if row.op not in ("before", "after"):
        raise _fail(i, "choose before, after or within")
    when = f"{row.value}T00:00:00+00:00" if _DAY.fullmatch(row.value) else row.value
    return {row.op: when}


def _attribute(i: int, row: Row) -> dict[str, Any]:
    out: dict[str, Any] = {"attribute": row.key, "op": row.op}
    if not row.key:
        raise _fail(i, "name the attribute")
    if row.op == Op.EXISTS and not row.type:
        return out
    out["type"] = row.type or "string"
    if row.op == Op.EXISTS:
        return out
    if row.op == Op.IN:
        out["value"] = [_typed(i, part.strip(), out["type"]) for part in row.value.split(",")]
    else:
        out["value"] = _typed(i, row.value, out["type"])
    return out


def _typed(i: int, text: str, kind: str) -> object:
    if kind == ValueType.NUMBER:
        if not _NUMBER.fullmatch(text):
            raise _fail(i, f"{text!r} is not a number")
        number = float(text)
        return int(number) if number.is_integer() and abs(number) < 2**53 else number
    if kind == ValueType.BOOLEAN:
        if text.lower() not in ("true", "false"):
            raise _fail(i, "write true or false")
        return text.lower() == "true"
    return text


def _row(part: dict[str, Any]) -> Row | None:  # noqa: PLR0911 - one per shape
    negated = set(part) == {"not"}
    inner = part["not"] if negated else part
    if "status" in inner and "list" not in inner and len(inner["status"]) == 1:
        return Row(Field.STATUS, "is_not" if negated else "is", value=inner["status"][0])
    if "list" in inner:
        if negated:
            return (
                Row(Field.LIST, NOT_CONFIRMED, value=inner["list"])
                if (inner["status"] == "confirmed")
                else None
            )
        return Row(Field.LIST, inner["status"], value=inner["list"])
    if "email_domain" in inner:
        return Row(Field.DOMAIN, "is_not" if negated else "is", value=inner["email_domain"])
    if "engagement" in inner:
        op = f"not_{inner['engagement']}" if negated else inner["engagement"]
        return Row(Field.ENGAGEMENT, op, value=str(inner["within_days"]))
    if negated:
        return None
    if "created_at" in inner:
        ((op, value),) = inner["created_at"].items()
        return Row(Field.CREATED, op, value=str(value))
    if "attribute" in inner:
        value = inner.get("value", "")
        values = value if isinstance(value, list) else [value]
        if any(isinstance(v, str) and "," in v for v in values) and inner["op"] == Op.IN:
            return None
        shown = ", ".join(_shown(v) for v in values)
        return Row(Field.ATTRIBUTE, inner["op"], inner["attribute"], inner.get("type", ""), shown)
    return None


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
