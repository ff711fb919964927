"""VERP return paths: made per delivery, read back, forgeries and other addresses refused."""

from __future__ import annotations

import re

import pytest
from pydantic import SecretStr, ValidationError

from herald.core.config import EmailSettings, Settings, SmtpSettings
from herald.email.verp import Verp

KEY = SecretStr("k" * 48)


def settings(bounce_address: str | None = "Bounces@Example.org", key: SecretStr = KEY) -> Settings:
    return Settings(
        secret_key=key,
        email=EmailSettings(smtp=SmtpSettings(bounce_address=bounce_address)),
    )


def test_an_address_names_its_delivery_and_reads_back() -> None:
    verp = Verp.configured(settings())
    assert verp is not None
    address = verp.address(123)
    local, _, domain = address.partition("@")
    assert domain == "example.org"
    assert local.startswith("bounces+123.")
    assert len(local) == len("bounces+123.") + 16
    assert verp.delivery_of(address) == 123
    # As mail systems hand it back: in angle brackets, with a display name, upper-cased.
    assert verp.delivery_of(f"<{address}>") == 123
    assert verp.delivery_of(f"Mail Delivery <{address.upper()}>") == 123
    assert verp.delivery_of(verp.address(9_223_372_036_854_775_807)) == 9_223_372_036_854_775_807


def test_forged_altered_and_foreign_addresses_name_no_delivery() -> None:
    verp = Verp.configured(settings())
    assert verp is not None
    address = verp.address(123)
    signature = address.split(".", 1)[1].split("@")[0]
    other = Verp.configured(settings(key=SecretStr("x" * 48)))
    assert other is not None
    refused = [
        f"bounces+124.{signature}@example.org",  # someone else's delivery, this signature
        f"bounces+0123.{signature}@example.org",  # the same id written otherwise
        address.replace("example.org", "example.com"),
        address.replace("bounces+", "other+"),
        other.address(123),  # another instance's key
        "bounces@example.org",
        "bounces+123@example.org",
        f"bounces+123.{signature[:-1]}@example.org",
        f"bounces+123.{signature}x@example.org",
        f"bounces+{'9' * 20}.{signature}@example.org",
        "",
        "not an address",
        "bounces+123.zzzzzzzzzzzzzzzz@example.org",
        "bounces+١٢٣." + signature + "@example.org",  # Arabic-Indic digits
        "x" * 100_000,
    ]
    assert [verp.delivery_of(a) for a in refused] == [None] * len(refused)


def test_unset_bounce_address_means_no_verp() -> None:
    assert Verp.configured(settings(None)) is None
    assert Verp.configured(settings("")) is None


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("bounces", "local@domain"),
        ("bounces+x@example.org", "must not contain '+'"),
        ("bö@example.org", "ASCII"),
        ("a" * 28 + "@example.org", "at most 27 characters"),
        ("a b@example.org", "dot-atom"),
        ("bounces@-example.org", "host name"),
        ("bounces@exa_mple.org", "host name"),
    ],
)
def test_a_bad_bounce_address_is_refused_naming_the_problem(address: str, problem: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(problem)):
        SmtpSettings(bounce_address=address)


def test_the_longest_base_still_makes_a_valid_local_part() -> None:
    verp = Verp.configured(settings("a" * 27 + "@example.org"))
    assert verp is not None
    address = verp.address(9_223_372_036_854_775_807)
    assert len(address.partition("@")[0]) == 64
