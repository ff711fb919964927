"""Segment filters: the JSON is parsed into values or refused with a message naming the
place; hostile filters (deep, wide, huge, wrongly typed) are 4xx material, never a crash."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from herald.core.errors import ValidationError
from herald.segments.compiler import CONDITION_SLOT, compile_filter, with_condition
from herald.segments.domain import (
    MAX_CONDITIONS,
    All,
    Attribute,
    CreatedWithin,
    EmailDomain,
    InList,
    Not,
    Op,
    StatusIn,
    ValueType,
    parse_filter,
)
from herald.segments.saved import to_json

CITY = {"attribute": "city", "op": "eq", "type": "string", "value": "Paris"}


def _refused(raw: object, match: str) -> ValidationError:
    with pytest.raises(ValidationError, match=match) as caught:
        parse_filter(raw)
    assert caught.value.field == "filter"
    return caught.value


def test_a_filter_parses_into_values() -> None:
    node = parse_filter(
        {
            "all": [
                {"status": "confirmed"},
                {"list": "news"},
                {"not": CITY},
                {"attribute": "age", "op": "in", "type": "number", "value": [1, 2.5, 1]},
                {"created_at": {"within_days": 30}},
                {"email_domain": "Example.COM"},
            ]
        }
    )
    assert node == All(
        (
            StatusIn(("confirmed",)),
            InList("news", "confirmed"),
            Not(Attribute(("city",), Op.EQ, ValueType.STRING, "Paris")),
            Attribute(("age",), Op.IN, ValueType.NUMBER, (Decimal("1"), Decimal("2.5"))),
            CreatedWithin(30),
            EmailDomain("example.com"),
        )
    )


def test_the_json_of_a_filter_parses_back_to_it() -> None:
    raw = {
        "any": [
            {"attribute": "joined", "op": "gte", "type": "date", "value": "2024-02-29"},
            {"attribute": "address.city", "op": "exists"},
            {"attribute": "vip", "op": "eq", "type": "boolean", "value": True},
            {"created_at": {"before": "2026-01-31T12:00:00+01:00"}},
        ]
    }
    node = parse_filter(raw)
    again = to_json(node)
    assert parse_filter(json.loads(json.dumps(again))) == node
    assert again["any"][3] == {"created_at": {"before": "2026-01-31T11:00:00+00:00"}}
    assert node.parts[0].value == date(2024, 2, 29)  # type: ignore[union-attr]


def test_ten_thousand_levels_of_nesting_are_refused_without_recursing() -> None:
    raw: dict[str, Any] = {"status": ["confirmed"]}
    for _ in range(10_000):
        raw = {"not": raw}
    _refused(raw, "nested too deeply")
    wide: dict[str, Any] = CITY
    for _ in range(10_000):
        wide = {"all": [wide]}
    _refused(wide, r"filter(\.all\[0\]){5}: nested too deeply")


def test_depth_five_is_allowed() -> None:
    raw: dict[str, Any] = CITY
    for _ in range(4):
        raw = {"not": raw}
    parse_filter(raw)
    _refused({"not": raw}, "nested too deeply")


def test_too_many_conditions() -> None:
    _refused({"any": [CITY] * (MAX_CONDITIONS + 1)}, "1 to 50")
    _refused({"all": [{"any": [CITY] * 30}, {"any": [CITY] * 30}]}, "at most 50 conditions")


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({}, "must be a JSON object"),
        ([], "must be a JSON object"),
        ("status", "must be a JSON object"),
        ({"sql": "1=1"}, "unknown condition 'sql'"),
        ({"all": []}, "1 to 50"),
        ({"all": {"status": "confirmed"}}, "1 to 50"),
        ({"status": ["confirmed", "gone"]}, r"filter\.status: must be a list of"),
        ({"status": []}, "must be a list of"),
        ({"list": "Not A Slug"}, "not a list slug"),
        ({"list": "news", "status": "maybe"}, r"filter\.status"),
        ({"list": "news", "extra": 1}, "unknown key 'extra'"),
        ({**CITY, "op": "like"}, r"filter\.op: must be one of"),
        ({**CITY, "type": "regex"}, r"filter\.type: must be one of"),
        ({**CITY, "type": "number"}, r"filter\.value: must be a number"),
        ({**CITY, "type": "number", "value": True}, "must be a number"),
        ({**CITY, "type": "number", "value": 1e300}, "between"),
        ({**CITY, "type": "boolean", "op": "lt", "value": True}, "lt does not apply"),
        ({**CITY, "type": "number", "op": "contains", "value": 1}, "contains does not apply"),
        ({**CITY, "type": "date", "value": "2024-02-30"}, "YYYY-MM-DD"),
        ({**CITY, "type": "date", "value": "yesterday"}, "YYYY-MM-DD"),
        ({**CITY, "value": "x" * 501}, "longer than 500"),
        ({**CITY, "value": "a\x00b"}, "NUL"),
        ({**CITY, "value": ["Paris"]}, "must be a string"),
        ({**CITY, "op": "in", "value": "Paris"}, "list of 1 to 100"),
        ({**CITY, "op": "in", "value": ["x"] * 101}, "list of 1 to 100"),
        ({**CITY, "op": "exists"}, "exists takes no value"),
        ({"attribute": "city", "op": "eq", "type": "string"}, "missing value"),
        ({"attribute": "1city", "op": "exists"}, "attribute name"),
        ({"attribute": "a.b.c.d.e.f", "op": "exists"}, "attribute name"),
        ({"attribute": "x" * 65, "op": "exists"}, "attribute name"),
        ({"attribute": "city'; DROP TABLE x; --", "op": "exists"}, "attribute name"),
        ({"attribute": 5, "op": "exists"}, "must be a string"),
        ({"created_at": {"before": "2026-01-01"}}, "time zone"),
        ({"created_at": {"before": "soon"}}, "ISO 8601"),
        ({"created_at": {"within_days": 0}}, "1 to 36500"),
        ({"created_at": {"within_days": 1.5}}, "whole number"),
        ({"created_at": {"within_days": True}}, "whole number"),
        ({"created_at": {"since": 3}}, "unknown key 'since'"),
        ({"created_at": {"before": "2026-01-01T00:00:00Z", "after": "x"}}, "must be one of"),
        ({"email_domain": "@example.com"}, "not a domain"),
        ({"email_domain": 3}, "must be a string"),
    ],
)
def test_bad_filters_are_refused_naming_the_place(raw: object, match: str) -> None:
    _refused(raw, match)


def test_a_huge_in_list_of_huge_strings_is_refused_by_size() -> None:
    _refused({**CITY, "op": "in", "value": ["x" * 10_000] * 100}, "longer than 500")


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
        max_leaves=20,
    )
)
def test_any_json_either_parses_or_is_a_validation_error(raw: object) -> None:
    try:
        node = parse_filter(raw)
    except ValidationError:
        return
    compile_filter(node, alias="s", first_param=1)


def test_user_values_are_parameters_never_sql() -> None:
    evil = "x'); DROP TABLE subscriptions; --"
    node = parse_filter(
        {"all": [{"attribute": "city", "op": "contains", "value": evil}, {"list": "news"}]}
    )
    sql, params = compile_filter(node, alias="s", first_param=7)
    assert evil not in sql
    assert "city" not in sql
    assert "news" not in sql
    assert params == [["city"], evil, "news", "confirmed"]
    assert "$7::text[]" in sql
    assert "$10::text" in sql
    assert "$11" not in sql


def test_the_condition_takes_the_slot_of_a_statement() -> None:
    statement = f"SELECT id FROM subscriptions AS s WHERE s.id > $1 AND {CONDITION_SLOT}"
    assert with_condition(statement, "x").endswith("AND (x)")
    with pytest.raises(ValueError, match="exactly once"):
        with_condition("SELECT 1", "x")
    with pytest.raises(ValueError, match="alias"):
        compile_filter(StatusIn(("confirmed",)), alias="segment_m", first_param=1)
    with pytest.raises(ValueError, match="alias"):
        compile_filter(StatusIn(("confirmed",)), alias="s; DROP", first_param=1)


def test_times_are_kept_in_utc() -> None:
    node = parse_filter({"created_at": {"after": "2026-06-01T02:00:00+02:00"}})
    assert node.at == datetime(2026, 6, 1, tzinfo=UTC)  # type: ignore[union-attr]
