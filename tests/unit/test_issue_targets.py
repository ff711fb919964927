"""An issue's target as the editor and the API give it, and the attributes a template
reads (no database)."""

from __future__ import annotations

import uuid

import pytest

from herald.core.errors import ValidationError
from herald.issues.domain import ListRef, SegmentRef, Target, TargetChoice
from herald.issues.rendering import attributes, compile_issue, reads_attributes


def test_a_choice_is_deduplicated_and_keeps_its_order() -> None:
    segment = uuid.uuid4()
    choice = TargetChoice.parse([" garden ", "default", "garden"], str(segment))
    assert choice == TargetChoice(("garden", "default"), segment)
    assert TargetChoice.parse(["default"], "").segment_id is None
    assert TargetChoice.parse(["default"], None).segment_id is None


@pytest.mark.parametrize(
    ("lists", "segment", "field"),
    [
        ([], None, "lists"),
        (["", "  "], None, "lists"),
        ("default", None, "lists"),
        ([None], None, "lists"),
        (["UPPER"], None, "lists"),
        (["a" * 61], None, "lists"),
        ([f"l{n}" for n in range(101)], None, "lists"),
        (["default"], "nope", "segment_id"),
        (["default"], 42, "segment_id"),
    ],
)
def test_a_bad_choice_is_a_400_naming_the_field(lists: object, segment: object, field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        TargetChoice.parse(lists, segment)
    assert refused.value.field == field


def test_a_target_reads_as_a_sentence() -> None:
    assert Target().slugs == ("default",)
    assert Target().describe() == "the default list"
    lists = (ListRef("a", "Garden"), ListRef("b", "Members"), ListRef("c", "News"))
    assert Target(lists[:1]).describe() == "Garden"
    assert Target(lists).describe() == "Garden, Members and News"
    segment = SegmentRef(uuid.uuid4(), "Paris")
    assert Target(lists[:2], segment).describe() == "Garden and Members, segment “Paris”"


@pytest.mark.parametrize(
    ("source", "reads"),
    [
        ("Hello", False),
        ("{{ subscriber.name }} {{ subscriber['email'] }}", False),
        ("{{ subscriber.attributes.city }}", True),
        ("{{ subscriber['attributes']['city'] }}", True),
        ("{% set s = subscriber %}{{ s.name }}", True),
        ("{{ subscriber }}", True),
        ("{% for k in subscriber %}{{ k }}{% endfor %}", True),
        ("{{ subscriber_name }}", False),
    ],
)
def test_an_issue_reads_attributes_only_when_a_body_may(source: str, reads: bool) -> None:
    assert reads_attributes(source, autoescape=True) is reads
    assert compile_issue("T", source, "text").uses_attributes is reads
    assert compile_issue("T", "<p>x</p>", source).uses_attributes is reads


def test_attributes_in_a_template_missing_ones_empty() -> None:
    compiled = compile_issue(
        "T",
        "<p>x</p>",
        "{{ subscriber.attributes.city }}|{{ subscriber.attributes.zip | default('none') }}|"
        "{{ subscriber.attributes.address.street }}|{{ subscriber.attributes.tags | join(',') }}|"
        "{% if subscriber.attributes.vip %}vip{% endif %}|{{ subscriber.attributes['items'] }}",
    )

    def text(stored: str | None) -> str:
        _, body = compiled.render(
            name="A", email="a@example.com", unsubscribe_url="u", attributes=attributes(stored)
        )
        return body.split("\n\n--\n")[0]

    assert (
        text(
            '{"city": "Lyon", "address": {"street": "Rue X"}, "tags": ["a", "b"],'
            ' "vip": true, "items": 3}'
        )
        == "Lyon|none|Rue X|a,b|vip|3"
    )
    assert text(None) == "|none||||"
    assert text("{}") == "|none||||"
    assert text('{"city": null}') == "|none||||"


def test_a_template_cannot_reach_inside_the_attributes_object() -> None:
    compiled = compile_issue("T", "<p>x</p>", "{{ subscriber.attributes._values }}")
    with pytest.raises(Exception, match="unsafe"):
        compiled.render(
            name="A", email="a@x", unsubscribe_url="u", attributes=attributes('{"a": 1}')
        )
