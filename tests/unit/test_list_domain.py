"""The lists' domain rules: slugs, names, descriptions, drafts and changes, the default
list, the form snippet."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from herald.core.errors import ValidationError
from herald.lists.domain import (
    MAX_SLUG,
    ListChange,
    ListDraft,
    Member,
    MemberStatus,
    NewsList,
    OptIn,
    Visibility,
    api_source,
    check_change,
    parse_description,
    parse_name,
    parse_slug,
    slug_from,
)
from herald.lists.snippet import form_snippet

# The database's own rule (migration 0018's CHECK on lists.slug).
DB_SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
NOW = datetime(2026, 12, 5, tzinfo=UTC)


def _list(
    slug: str = "news", name: str = "News", visibility: Visibility = Visibility.PUBLIC
) -> NewsList:
    return NewsList(uuid.uuid4(), slug, name, "", visibility, OptIn.DOUBLE, NOW, NOW)


@pytest.mark.parametrize("slug", ["a", "weekly-digest", "2026", "a-b-c", "x" * MAX_SLUG])
def test_good_slugs(slug: str) -> None:
    assert parse_slug(f" {slug} ") == slug


@pytest.mark.parametrize(
    "slug",
    [
        "",
        " ",
        "A",
        "Weekly",
        "a--b",
        "-a",
        "a-",
        "a_b",
        "a b",
        "é",
        "a.b",
        "x" * (MAX_SLUG + 1),
        "a\x00",
    ],
)
def test_bad_slugs_name_the_field(slug: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_slug(slug)
    assert caught.value.field == "slug"


@given(st.text(max_size=80))
def test_a_parsed_slug_always_satisfies_the_database(raw: str) -> None:
    try:
        slug = parse_slug(raw)
    except ValidationError:
        return
    assert DB_SLUG.match(slug)
    assert len(slug) <= MAX_SLUG


@given(st.text(max_size=300))
def test_a_suggested_slug_is_empty_or_valid(name: str) -> None:
    slug = slug_from(name)
    assert slug == "" or (DB_SLUG.match(slug) and len(slug) <= MAX_SLUG)


@given(st.from_regex(DB_SLUG, fullmatch=True).filter(lambda s: len(s) <= MAX_SLUG))
def test_every_slug_the_database_takes_is_accepted(slug: str) -> None:
    assert parse_slug(slug) == slug


def test_suggested_slugs() -> None:
    assert slug_from("Weekly Digest!") == "weekly-digest"
    assert slug_from("Café  Crème") == "cafe-creme"
    assert slug_from("日本") == ""
    long = slug_from("word " * 40)
    assert len(long) <= MAX_SLUG
    assert not long.endswith("-")


def test_names_and_descriptions() -> None:
    assert parse_name("  Two   words ") == "Two words"
    for bad in ("", "   ", "x" * 101, "bell\x07"):
        with pytest.raises(ValidationError) as caught:
            parse_name(bad)
        assert caught.value.field == "name"
    assert parse_description("a\r\nb\r\n\r\nc ") == "a\nb\n\nc"
    assert parse_description("") == ""
    for bad in ("d" * 1001, "nul\x00", "esc\x1b["):
        with pytest.raises(ValidationError) as caught:
            parse_description(bad)
        assert caught.value.field == "description"


def test_a_draft_takes_its_slug_from_the_name() -> None:
    draft = ListDraft.parse(name="Field Notes")
    assert (draft.slug, draft.visibility, draft.opt_in) == (
        "field-notes",
        Visibility.PUBLIC,
        OptIn.DOUBLE,
    )
    with pytest.raises(ValidationError) as caught:
        ListDraft.parse(name="!!!")
    assert caught.value.field == "slug"
    for field, value in (("visibility", "secret"), ("opt_in", "triple")):
        with pytest.raises(ValidationError) as caught:
            ListDraft.parse(name="A", **{field: value})
        assert caught.value.field == field


def test_a_change_applies_what_it_names() -> None:
    current = ListDraft.parse(name="A", slug="a", description="d")
    changed = ListChange.parse(name="B", visibility="private").applied_to(current)
    assert changed == ListDraft("a", "B", "d", Visibility.PRIVATE, OptIn.DOUBLE)
    assert ListChange().applied_to(current) == current


def test_the_default_list_keeps_its_slug() -> None:
    default = _list("default", "Newsletter")
    check_change(default, ListDraft.parse(name="Other name", slug="default"))
    with pytest.raises(ValidationError) as caught:
        check_change(default, ListDraft.parse(name="Newsletter", slug="main"))
    assert caught.value.field == "slug"
    with pytest.raises(ValidationError) as caught:
        check_change(default, ListDraft.parse(name="Newsletter", slug="default", opt_in="single"))
    assert caught.value.field == "opt_in"
    check_change(_list(), ListDraft.parse(name="News", slug="renamed", opt_in="single"))


def test_mailed_needs_both_confirmations() -> None:
    def member(status: MemberStatus, address: str) -> Member:
        return Member(
            uuid.uuid4(), "a@b.c", "A", status, address, "api:x", None, None, NOW, None, None
        )

    assert member(MemberStatus.CONFIRMED, "confirmed").mailed
    assert not member(MemberStatus.CONFIRMED, "pending_confirmation").mailed
    assert not member(MemberStatus.PENDING, "confirmed").mailed


def test_api_source() -> None:
    assert api_source("CI key", "admin") == "api:CI key"
    assert api_source(None, "admin") == "api:admin"
    assert len(api_source("k" * 500, "admin")) == 200


def test_the_snippet_is_a_plain_form_with_escaped_values() -> None:
    snippet = form_snippet("https://news.example.org/", _list("garden", 'Garden "<News>"'))
    assert snippet.startswith('<form method="post" action="https://news.example.org/subscriptions"')
    assert '<input type="hidden" name="list" value="garden">' in snippet
    assert 'name="email"' in snippet
    assert 'name="name"' in snippet
    assert "Garden &quot;&lt;News&gt;&quot;" in snippet
    assert "<script" not in snippet
    assert "csrf_token" not in snippet
    assert "http" not in snippet.replace("https://news.example.org/subscriptions", "")
