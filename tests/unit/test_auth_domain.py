"""Account rules: usernames, password policy, scopes, credential formats, signing."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from herald.auth import devices
from herald.auth.domain import (
    API_KEY_PREFIX,
    PasswordPolicyError,
    Scope,
    Username,
    check_new_password,
    device_key,
    digest,
    generate_password,
    login_delay,
    looks_like_api_key,
    new_api_key,
    new_session_token,
    username_key,
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


def test_a_scope_from_a_form_is_read_or_write() -> None:
    assert Scope.parse("read") is Scope.READ
    assert Scope.parse("write") is Scope.WRITE
    with pytest.raises(ValidationError, match=r"^Unknown scope\.$"):
        Scope.parse("admin")


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


# -- login throttling: the username delay and device cookies ----------------------------


def test_no_delay_up_to_the_limit_then_doubling() -> None:
    assert [login_delay(n, 10, 30.0) for n in range(11)] == [0.0] * 11
    assert [login_delay(n, 10, 30.0) for n in range(11, 18)] == [1, 2, 4, 8, 16, 30, 30]


@given(st.integers(min_value=-5, max_value=10**9), st.integers(1, 1000), st.floats(0, 60))
def test_the_delay_is_bounded_and_never_shrinks_with_more_failures(
    failures: int, limit: int, cap: float
) -> None:
    delay = login_delay(failures, limit, cap)
    assert 0.0 <= delay <= cap
    assert login_delay(failures + 1, limit, cap) >= delay


@given(st.text(max_size=300))
def test_username_keys_never_collide_with_device_keys(raw: str) -> None:
    key = username_key(raw)
    assert not key.startswith(device_key(""))
    assert username_key(f"  {raw.upper()} ") == username_key(raw.upper())


USER = uuid.UUID("6f1d2d0e-8a8b-4b5c-9d7e-0f0e0d0c0b0a")
NOW = 1_800_000_000


def test_a_device_cookie_is_recognised_for_its_user_only() -> None:
    cookie = devices.issue(SETTINGS, USER, now=NOW)
    device = devices.recognise(SETTINGS, cookie, USER, now=NOW + 60)
    assert device is not None
    assert device.user_id == USER
    assert device.failure_key == device_key(device.nonce)
    assert devices.recognise(SETTINGS, cookie, uuid.uuid4(), now=NOW) is None
    assert devices.issue(SETTINGS, USER, now=NOW) != cookie, "a fresh nonce every time"


def test_a_device_cookie_lasts_a_year() -> None:
    cookie = devices.issue(SETTINGS, USER, now=NOW)
    assert devices.recognise(SETTINGS, cookie, USER, now=NOW + 364 * 24 * 3600) is not None
    assert devices.recognise(SETTINGS, cookie, USER, now=NOW + 366 * 24 * 3600) is None
    assert devices.recognise(SETTINGS, cookie, USER, now=NOW - 3600) is None, "from the future"


def test_forged_or_foreign_device_cookies_are_not_recognised() -> None:
    cookie = devices.issue(SETTINGS, USER, now=NOW)
    other_key = Settings(secret_key="z" * 48)  # type: ignore[arg-type]
    assert devices.recognise(other_key, cookie, USER, now=NOW) is None
    flash_signed = sign(SETTINGS, "flash", f"1|{USER}|nonce|{NOW}")
    assert devices.recognise(SETTINGS, flash_signed, USER, now=NOW) is None
    handmade = sign(SETTINGS, devices.PURPOSE, f"1|{USER}|nonce|{NOW}")
    assert devices.recognise(SETTINGS, handmade, USER, now=NOW) is not None, "control"


@given(st.text(max_size=600))
def test_any_cookie_value_is_either_recognised_or_refused_quietly(raw: str) -> None:
    assert devices.recognise(SETTINGS, raw, USER, now=NOW) is None


@pytest.mark.parametrize(
    "payload",
    ["", "1|x|n|1", f"2|{USER}|n|{NOW}", f"1|{USER}||{NOW}", f"1|{USER}|n|soon", f"1|{USER}|n"],
)
def test_malformed_device_payloads_are_refused(payload: str) -> None:
    cookie = sign(SETTINGS, devices.PURPOSE, payload)
    assert devices.recognise(SETTINGS, cookie, USER, now=NOW) is None
