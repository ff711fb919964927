"""Issue 14 item 4: the branding set in the admin over the configured defaults."""

from __future__ import annotations

import uuid

import pytest

from herald.core.errors import ValidationError
from herald.design.domain import (
    BUILTIN_ID,
    Field,
    Overrides,
    effective_branding,
    parse_accent,
    parse_footer_address,
    parse_layout_id,
    parse_layout_name,
    parse_name,
)
from herald.design.logos import LogoRef
from herald.email.layout import Branding

DEFAULTS = Branding(
    name="Configured", accent="#112233", logo_url="https://cdn/x.png", footer_address="1 Road"
)
BASE = "https://news.example.org"


def test_nothing_set_is_the_configured_defaults() -> None:
    assert effective_branding(Overrides(), DEFAULTS, BASE) == DEFAULTS


def test_values_set_in_the_admin_win() -> None:
    logo = LogoRef("a" * 64, "image/png")
    set_here = Overrides(name="Mine", accent="#aa0000", footer_address="", logo_set=True, logo=logo)
    assert effective_branding(set_here, DEFAULTS, BASE) == Branding(
        name="Mine",
        accent="#aa0000",
        logo_url=f"{BASE}/brand/logo/{'a' * 64}.png",
        footer_address="",
    )
    removed = Overrides(logo_set=True, logo=None)
    assert effective_branding(removed, DEFAULTS, BASE).logo_url == ""


@pytest.mark.parametrize(
    ("raw", "accent"), [("#3451C7", "#3451c7"), (" 3451c7 ", "#3451c7"), ("#000000", "#000000")]
)
def test_an_accent_is_a_hex_colour(raw: str, accent: str) -> None:
    assert parse_accent(raw) == accent


@pytest.mark.parametrize("raw", ["", "#345", "red", "#3451c7;background:url(x)", "#gggggg"])
def test_anything_else_is_no_accent(raw: str) -> None:
    with pytest.raises(ValidationError, match="hex colour") as refused:
        parse_accent(raw)
    assert refused.value.field == "accent"


def test_names_addresses_and_layout_names_are_one_line_and_bounded() -> None:
    assert parse_name("  Acme \n Weekly ") == "Acme Weekly"
    assert parse_footer_address("1 Main St\r\nSpringfield") == "1 Main St Springfield"
    assert parse_footer_address("   ") == ""
    assert parse_layout_name(" Copy  of it ") == "Copy of it"
    for parse, raw in (
        (parse_name, " "),
        (parse_name, "x" * 101),
        (parse_footer_address, "x" * 301),
        (parse_layout_name, ""),
    ):
        with pytest.raises(ValidationError):
            parse(raw)


def test_layout_ids_and_fields_parse() -> None:
    some = uuid.uuid4()
    assert parse_layout_id(BUILTIN_ID) == BUILTIN_ID
    assert parse_layout_id(str(some).upper()) == str(some)
    assert parse_layout_id("../etc") == ""
    assert Field.parse("accent") is Field.ACCENT
    with pytest.raises(ValidationError):
        Field.parse("version")
