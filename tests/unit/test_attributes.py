"""Subscriber attributes: a bounded JSON object; changes merge at the top level."""

from __future__ import annotations

from typing import Any

import pytest

from herald.core.errors import ValidationError
from herald.segments.attributes import MAX_BYTES, merge, parse_attributes, parse_change


def test_an_object_of_named_values_is_accepted() -> None:
    raw = {"city": "Zürich", "_n": 1.5, "vip": True, "tags": ["a", 1], "a": {"b": {"c": None}}}
    assert parse_attributes(raw) == raw


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "must be a JSON object"),
        ("x", "must be a JSON object"),
        (None, "must be a JSON object"),
        ({"": 1}, "not an attribute name"),
        ({"9lives": 1}, "not an attribute name"),
        ({"é": 1}, "not an attribute name"),
        ({"a" * 65: 1}, "not an attribute name"),
        ({"a": {"b c": 1}}, "not an attribute name"),
        ({"a": float("inf")}, "out of range"),
        ({"a": "x\x00"}, "NUL"),
        ({"a": None}, "null"),
        ({"a": object()}, "not JSON"),
        ({"a": "x" * MAX_BYTES}, "16 KiB"),
    ],
)
def test_bad_attributes_are_refused(raw: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as caught:
        parse_attributes(raw)
    assert caught.value.field == "attributes"


def test_ten_thousand_levels_are_refused_without_recursing() -> None:
    deep: Any = 1
    for _ in range(10_000):
        deep = {"a": deep}
    with pytest.raises(ValidationError, match="nested more than 5"):
        parse_attributes(deep)
    wide: Any = 1
    for _ in range(10_000):
        wide = [wide]
    with pytest.raises(ValidationError, match="nested more than 5"):
        parse_change({"a": wide})


def test_a_change_merges_at_the_top_level_and_null_deletes() -> None:
    current = {"city": "Paris", "address": {"zip": "75001", "street": "x"}, "old": 1}
    change = parse_change({"city": "Lyon", "address": {"zip": "69001"}, "old": None, "new": 2})
    assert merge(current, change) == {"city": "Lyon", "address": {"zip": "69001"}, "new": 2}


def test_a_merge_over_the_size_limit_is_refused() -> None:
    half = "x" * (MAX_BYTES // 2)
    with pytest.raises(ValidationError, match="16 KiB"):
        merge({"a": half}, parse_change({"b": half}))
