"""Account rules: usernames, password policy, scopes, credential formats, signing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from herald.auth.domain import (
    API_KEY_PREFIX,
    PasswordPolicyError,
    Scope,
    Username,
    check_new_password,
    digest,
    generate_password,
    looks_like_api_key,
    new_api_key,
    new_session_token,
)
from herald.core.config import Settings
from herald.core.errors import ValidationError
from herald.core.signing import sign, unsign


@pytest.mark.parametrize("name", ["admin", "Ann.Smith", "ops@example.org", "a", "x-1_2"])
def test_reasonable_usernames_parse(name: str) -> None:
    assert Username.parse(f"  {name} ").value == name


@pytest.mark.parametrize("name", ["", " ", "-admin", "with space", "a" * 65, "ünïcode", "a/b"])
def test_odd_usernames_are_refused(name: str) -> None:
    with pytest.raises(ValidationError):
        Username.parse(name)


@pytest.mark.parametrize("length", [12, 64, 128])
def test_passwords_of_12_to_128_characters_pass(length: int) -> None:
    check_new_password("p" * length, current="something else entirely")


@pytest.mark.parametrize(("password", "reason"), [("p" * 11, "too short"), ("p" * 129, "too long")])
def test_passwords_outside_the_length_policy_fail(password: str, reason: str) -> None:
    with pytest.raises(PasswordPolicyError, match=reason):
        check_new_password(password)


def test_the_new_password_must_differ_from_the_current_one() -> None:
    with pytest.raises(PasswordPolicyError, match="different"):
        check_new_password("the same passphrase", current="the same passphrase")


def test_length_counts_characters_not_bytes() -> None:
    check_new_password("ü" * 12)  # 24 bytes in UTF-8, 12 characters: allowed
    with pytest.raises(PasswordPolicyError):
        check_new_password("ü" * 11)


def test_read_scope_cannot_write() -> None:
    assert Scope.WRITE.allows(Scope.WRITE)
    assert Scope.WRITE.allows(Scope.READ)
    assert Scope.READ.allows(Scope.READ)
    assert not Scope.READ.allows(Scope.WRITE)


def test_generated_credentials_are_long_distinct_and_recognisable() -> None:
    tokens = {new_session_token() for _ in range(200)}
    assert len(tokens) == 200
    assert all(len(t) >= 43 for t in tokens)
    key = new_api_key()
    assert key.startswith(API_KEY_PREFIX)
    assert looks_like_api_key(key)
    assert not looks_like_api_key(new_session_token())
    assert len(generate_password()) >= 24
    assert digest(key) != digest(new_api_key())
    assert len(digest(key)) == 32


SETTINGS = Settings(secret_key="k" * 48)  # type: ignore[arg-type]


@given(st.text())
def test_signed_payloads_round_trip(payload: str) -> None:
    assert unsign(SETTINGS, "flash", sign(SETTINGS, "flash", payload)) == payload


def test_signatures_are_bound_to_purpose_and_key() -> None:
    signed = sign(SETTINGS, "flash", "hello")
    assert unsign(SETTINGS, "csrf", signed) is None
    other = Settings(secret_key="z" * 48)  # type: ignore[arg-type]
    assert unsign(other, "flash", signed) is None
    encoded, _, mac = signed.partition(".")
    assert unsign(SETTINGS, "flash", encoded + "x." + mac) is None
    assert unsign(SETTINGS, "flash", "no-signature") is None
