"""The admin's segment builder: form rows ↔ filter JSON, and messages naming the row."""

from __future__ import annotations

from typing import Any

import pytest

from herald.core.errors import ValidationError
from herald.segments.builder import Builder, Field, Row, describe

FORM = {
    "name": "N",
    "match": "any",
    "field_0": "status",
    "op_0": "is_not",
    "value_0": "unsubscribed",
    "field_1": "list",
    "op_1": "not_confirmed",
    "value_1": "news",
    "field_2": "attribute",
    "key_2": "age",
    "op_2": "in",
    "type_2": "number",
    "value_2": "1, 2.5 ,-3",
    "field_3": "created_at",
    "op_3": "before",
    "value_3": "2026-01-31",
    "field_4": "email_domain",
    "op_4": "is",
    "value_4": "Example.COM",
    "field_5": "attribute",
    "key_5": "vip",
    "op_5": "exists",
    "type_5": "",
    "field_7": "status",  # after a gap: not read
}
FILTER = {
    "any": [
        {"not": {"status": ["unsubscribed"]}},
        {"not": {"list": "news", "status": "confirmed"}},
        {"attribute": "age", "op": "in", "type": "number", "value": [1, 2.5, -3]},
        {"created_at": {"before": "2026-01-31T00:00:00+00:00"}},
        {"email_domain": "example.com"},
        {"attribute": "vip", "op": "exists"},
    ]
}


def test_rows_make_a_filter_and_the_filter_makes_the_rows_again() -> None:
    builder = Builder.from_form(FORM)
    assert len(builder.rows) == 6
    assert builder.filter_json() == FILTER
    again = Builder.from_filter("N", FILTER)
    assert again.mode == "rows"
    assert again.match == "any"
    assert again.filter_json() == FILTER
    assert again.rows[2] == Row(Field.ATTRIBUTE, "in", "age", "number", "1, 2.5, -3")


@pytest.mark.parametrize(
    "raw",
    [
        {"all": [{"any": [{"status": ["confirmed"]}]}]},
        {"status": ["confirmed", "pending_confirmation"]},
        {"not": {"attribute": "a", "op": "exists"}},
        {"attribute": "a", "op": "in", "value": ["x,y"]},
    ],
)
def test_what_rows_cannot_show_is_edited_as_json(raw: dict[str, Any]) -> None:
    builder = Builder.from_filter("N", raw)
    assert builder.mode == "json"
    assert builder.rows == ()
    assert '"' in builder.json_text


def test_a_single_condition_is_one_row() -> None:
    builder = Builder.from_filter("N", {"email_domain": "x.org"})
    assert builder.rows == (Row(Field.DOMAIN, "is", value="x.org"),)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            {"op_0": "gt", "type_0": "number", "value_0": "ten"},
            "Condition 1: 'ten' is not a number",
        ),
        ({"op_0": "eq", "type_0": "boolean", "value_0": "yes"}, "Condition 1: write true or false"),
        ({"op_0": "eq", "key_0": ""}, "Condition 1: name the attribute"),
        ({"op_0": "lt", "type_0": "boolean", "value_0": "true"}, "Condition 1: lt does not apply"),
        ({"op_0": "eq", "type_0": "date", "value_0": "31/01/2026"}, "Condition 1: must be a date"),
    ],
)
def test_bad_rows_name_the_condition(row: dict[str, str], message: str) -> None:
    form = {"field_0": "attribute", "key_0": "a", **row}
    with pytest.raises(ValidationError, match=message):
        Builder.from_form(form).filter_json()


@pytest.mark.parametrize("days", ["\u00b2", "9" * 5000, "-1", "7 days", ""])
def test_a_number_of_days_that_is_not_one_names_the_condition(days: str) -> None:
    form = {"field_0": "created_at", "op_0": "within_days", "value_0": days}
    with pytest.raises(ValidationError, match="Condition 1: write a number of days"):
        Builder.from_form(form).filter_json()


def test_rows_are_added_and_removed_within_limits() -> None:
    builder = Builder()
    with pytest.raises(ValidationError, match="Add at least one condition"):
        builder.filter_json()
    with pytest.raises(ValidationError, match="Choose what"):
        builder.with_row("sql")
    for _ in range(50):
        builder = builder.with_row("status")
    assert builder.rows[0] == Row(Field.STATUS, "is", value="confirmed")
    with pytest.raises(ValidationError, match="At most 50"):
        builder.with_row("status")
    assert len(builder.without_row(3).rows) == 49
    with pytest.raises(ValidationError, match="unknown field"):
        Builder.from_form({"field_0": "password"})


def test_a_filter_in_words() -> None:
    assert describe(FILTER) == (
        "status is not unsubscribed or is not a confirmed member of news or age is one of "
        "1, 2.5, -3 or signed up before 2026-01-31 or email domain is example.com or vip is set"
    )
    assert describe({"created_at": {"within_days": 7}}) == "signed up within the last 7 days"
    assert describe({"all": [{"any": [{"status": ["confirmed"]}]}]}) == (
        "1 condition in nested groups"
    )
