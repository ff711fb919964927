"""Subscriber values: a ``SubscriberName`` or ``SubscriberEmail`` that exists is valid."""

from __future__ import annotations

import hashlib
import string
import unicodedata
from collections.abc import Iterator

import idna
import pytest
import regex
from hypothesis import assume, given
from hypothesis import strategies as st

from herald.core.errors import ValidationError
from herald.subscriptions.domain import (
    FORBIDDEN_NAME_CHARACTERS,
    MAX_STACKED_MARKS,
    NewSubscriber,
    SubscriberEmail,
    SubscriberName,
    hash_token,
    is_well_formed_token,
    new_confirmation_token,
)

FORBIDDEN = sorted('/()"<>\\{}')
COMBINING_DIAERESIS = "\u0308"
BULGARIA_TLD = "\u0431\u0433"  # Cyrillic "bg"; xn--90ae in punycode


def graphemes(text: str) -> int:
    return len(regex.findall(r"\X", text))


@pytest.fixture(autouse=True, scope="module")
def no_dns() -> Iterator[None]:
    """Parsing an address must never touch the network: any DNS use fails the test."""
    import socket

    import email_validator.deliverability

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("SubscriberEmail.parse must not look anything up")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(email_validator.deliverability, "validate_email_deliverability", refuse)
        patch.setattr(socket, "getaddrinfo", refuse)
        yield


# -- SubscriberName ----------------------------------------------------------


def test_the_forbidden_characters_are_the_documented_ones() -> None:
    assert sorted(FORBIDDEN_NAME_CHARACTERS) == FORBIDDEN


def test_a_name_is_trimmed() -> None:
    assert SubscriberName.parse("  Ursula Le Guin \n").value == "Ursula Le Guin"
    assert str(SubscriberName.parse("Ursula")) == "Ursula"


@pytest.mark.parametrize("raw", ["", " ", "\t\n", "\u3000\u00a0"])
def test_an_empty_or_blank_name_is_rejected(raw: str) -> None:
    with pytest.raises(ValidationError, match="must not be empty") as caught:
        SubscriberName.parse(raw)
    assert caught.value.field == "name"


def test_256_graphemes_are_accepted_even_when_each_is_two_code_points() -> None:
    name = ("e" + COMBINING_DIAERESIS) * 256
    assert len(name) == 512
    assert SubscriberName.parse(name).value == name


@pytest.mark.parametrize("unit", ["a", "e" + COMBINING_DIAERESIS, "\U0001f44d\U0001f3fd"])
def test_257_graphemes_are_rejected(unit: str) -> None:
    SubscriberName.parse(unit * 256)
    with pytest.raises(ValidationError, match="too long"):
        SubscriberName.parse(unit * 257)


def marks_in_a_row(text: str) -> int:
    longest = run = 0
    for ch in unicodedata.normalize("NFC", text):
        run = run + 1 if unicodedata.category(ch) in {"Mn", "Me"} else 0
        longest = max(longest, run)
    return longest


def test_a_zalgo_name_is_rejected_although_it_is_one_grapheme() -> None:
    zalgo = "a" + "".join(chr(0x300 + n % 0x70) for n in range(1000))
    assert graphemes(zalgo) == 1
    with pytest.raises(ValidationError, match="too long: at most 512 Unicode code points") as e:
        SubscriberName.parse(zalgo)
    assert e.value.field == "name"


def test_marks_stacked_on_one_letter_are_rejected_beyond_eight() -> None:
    marks = "".join(chr(0x300 + n) for n in range(20))  # 20 distinct combining accents
    SubscriberName.parse("Max" + marks[:8])
    with pytest.raises(ValidationError, match="too many accents on one letter"):
        SubscriberName.parse("Max" + marks[:9])
    with pytest.raises(ValidationError, match="too many accents"):
        SubscriberName.parse(("H" + marks) * 3)


def test_512_code_points_are_accepted_and_513_rejected() -> None:
    SubscriberName.parse("a" * 256 + "́" * 0)
    thumbs = "\U0001f44d\U0001f3fd" * 256  # 256 graphemes, 512 code points
    assert SubscriberName.parse(thumbs).value == thumbs
    with pytest.raises(ValidationError, match="code points"):
        SubscriberName.parse(thumbs[:-1] + "\U0001f44d\U0001f3fd\U0001f3fd")


def test_code_points_are_counted_after_nfc_composition() -> None:
    # "e" + combining acute composes to one code point: 256 accented letters typed
    # decomposed (512 code points, 256 graphemes) are 256 code points after NFC.
    decomposed = "e\u0301" * 256
    assert SubscriberName.parse(decomposed).value == decomposed


@pytest.mark.parametrize(
    "name",
    [
        "\u0f56\u0f66\u0f92\u0fb2\u0f74\u0f56\u0f66",  # Tibetan, 3 subjoined marks
        "\u05e9\u05b8\u05c1\u05dc\u05d5\u05b9\u05dd",  # pointed Hebrew
        "\u0915\u094d\u0937\u0924\u094d\u0930\u093f\u092f",  # Devanagari conjuncts
        "\u0e1c\u0e39\u0e49",  # Thai vowel and tone marks
        "Nguy\u1ec5n Th\u1ecb Minh Khai",  # Vietnamese
        "\U0001f469\U0001f3fd\u200d\u2764\ufe0f\u200d\U0001f48b\u200d\U0001f468\U0001f3fb",
    ],
)
def test_real_names_with_marks_still_parse(name: str) -> None:
    assert SubscriberName.parse(name).value == name


@pytest.mark.parametrize("char", FORBIDDEN)
def test_each_forbidden_character_is_rejected(char: str) -> None:
    with pytest.raises(ValidationError, match="must not contain") as caught:
        SubscriberName.parse(f"Ursula {char} Le Guin")
    assert char in caught.value.message
    assert caught.value.field == "name"


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\n", "\t"])
def test_control_characters_inside_a_name_are_rejected(char: str) -> None:
    with pytest.raises(ValidationError, match="control characters"):
        SubscriberName.parse(f"Ursula{char}Le Guin")


# Anything but control characters, surrogates and the forbidden set.
NAME_CHARACTERS = st.characters(
    exclude_categories=("Cc", "Cs"), exclude_characters="".join(FORBIDDEN)
)
PADDING = st.text(st.sampled_from(" \t\n\r\u00a0\u2003\u3000"), max_size=3)


@given(left=PADDING, core=st.text(NAME_CHARACTERS, min_size=1, max_size=300), right=PADDING)
def test_any_acceptable_name_parses_to_its_trimmed_form(left: str, core: str, right: str) -> None:
    stripped = (left + core + right).strip()
    assume(stripped and graphemes(stripped) <= 256)
    assume(marks_in_a_row(stripped) <= MAX_STACKED_MARKS)
    assert SubscriberName.parse(left + core + right).value == stripped


@given(before=st.text(max_size=40), char=st.sampled_from(FORBIDDEN), after=st.text(max_size=40))
def test_any_name_containing_a_forbidden_character_is_rejected(
    before: str, char: str, after: str
) -> None:
    with pytest.raises(ValidationError):
        SubscriberName.parse(before + char + after)


@given(char=st.characters(categories=["Cc"]))
def test_any_control_character_inside_a_name_is_rejected(char: str) -> None:
    with pytest.raises(ValidationError):
        SubscriberName.parse(f"a{char}b")


# -- SubscriberEmail ---------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("ursula_le_guin@gmail.com", "ursula_le_guin@gmail.com"),
        ("Ursula.Le.Guin@Example.COM", "Ursula.Le.Guin@example.com"),
        ("  ursula@example.com\n", "ursula@example.com"),
        ("o'brien+news@mail.example.org", "o'brien+news@mail.example.org"),
    ],
)
def test_valid_addresses_are_accepted_and_normalised(raw: str, normalised: str) -> None:
    assert SubscriberEmail.parse(raw).value == normalised


@pytest.mark.parametrize(
    "raw",
    ["", "   ", "ursula", "@domain.com", "ursula@", "a@b@c", "a..b@example.com", "a@b"],
)
def test_invalid_addresses_are_rejected(raw: str) -> None:
    with pytest.raises(ValidationError) as caught:
        SubscriberEmail.parse(raw)
    assert caught.value.field == "email"


@pytest.mark.parametrize("raw", ["ursula@example.test", "ursula@mail.localhost"])
def test_special_use_domains_are_rejected_even_without_dns(raw: str) -> None:
    """email-validator refuses RFC 6761 names (.test, .localhost, .invalid …) on syntax alone,
    so fixtures elsewhere must use real-looking domains such as example.com."""
    with pytest.raises(ValidationError, match="special-use or reserved"):
        SubscriberEmail.parse(raw)


def test_a_very_long_invalid_address_is_shortened_in_the_message() -> None:
    with pytest.raises(ValidationError) as caught:
        SubscriberEmail.parse("x" * 500)
    assert len(caught.value.message) < 300


# st.emails() draws its top-level domain from IANA's root zone list, which holds none of the
# special-use names email-validator rejects (checked: no overlap with
# email_validator.SPECIAL_USE_DOMAIN_NAMES), uses only RFC 5322 atext in the local part and
# keeps addresses within 254 characters. So every address it generates must be accepted.
# Normalisation keeps the local part as written and turns the domain into its lowercase
# Unicode form: "A.XN--90AE" (Bulgaria's IDN TLD, in punycode) becomes "a." + BULGARIA_TLD.
@given(st.emails())
def test_generated_addresses_are_accepted_and_the_domain_normalised(address: str) -> None:
    local, domain = address.rsplit("@", 1)
    assert SubscriberEmail.parse(address).value == f"{local}@{idna.decode(domain)}"


def test_a_punycode_domain_is_normalised_to_unicode() -> None:
    assert SubscriberEmail.parse("ursula@Mail.XN--90AE").value == "ursula@mail." + BULGARIA_TLD


# -- NewSubscriber -----------------------------------------------------------


def test_a_new_subscriber_parses_both_fields() -> None:
    subscriber = NewSubscriber.parse(name=" Ursula ", email="ursula@example.com")
    assert subscriber.name == SubscriberName("Ursula")
    assert subscriber.email == SubscriberEmail("ursula@example.com")


@pytest.mark.parametrize(
    ("fields", "message", "field"),
    [
        ({"name": None, "email": "ursula@example.com"}, "name is missing", "name"),
        ({"name": "Ursula", "email": None}, "email is missing", "email"),
        ({"name": 42, "email": "ursula@example.com"}, "name must be a string", "name"),
        ({"name": "Ursula", "email": ["ursula@example.com"]}, "email must be a string", "email"),
    ],
)
def test_a_missing_or_non_text_field_is_named(
    fields: dict[str, object], message: str, field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        NewSubscriber.parse(**fields)
    assert caught.value.message == message
    assert caught.value.field == field


def test_every_problem_is_named_in_one_message() -> None:
    with pytest.raises(ValidationError) as caught:
        NewSubscriber.parse(name=None, email=None)
    assert "name is missing" in caught.value.message
    assert "email is missing" in caught.value.message
    assert caught.value.field is None


def test_invalid_values_in_both_fields_are_both_reported() -> None:
    with pytest.raises(ValidationError) as caught:
        NewSubscriber.parse(name="", email="not-an-address")
    assert "name must not be empty" in caught.value.message
    assert "not a valid email address" in caught.value.message


# -- confirmation tokens -----------------------------------------------------


def test_tokens_are_long_and_alphanumeric() -> None:
    alphabet = set(string.ascii_letters + string.digits)
    for _ in range(200):
        token = new_confirmation_token()
        assert len(token) >= 25
        assert set(token) <= alphabet
        assert is_well_formed_token(token)


def test_tokens_do_not_repeat() -> None:
    tokens = {new_confirmation_token() for _ in range(2_000)}
    assert len(tokens) == 2_000


@pytest.mark.parametrize(
    "token",
    [
        "",
        "a" * 24,
        "a" * 129,
        "a" * 31 + "-",
        "a" * 31 + "=",
        "a" * 32 + "\n",
        " " + "a" * 32,
        "a" * 31 + "\u0663",  # ARABIC-INDIC DIGIT THREE is a digit, but not [0-9]
        "a" * 31 + "\u00e9",
    ],
)
def test_malformed_tokens_are_recognised(token: str) -> None:
    assert not is_well_formed_token(token)


@pytest.mark.parametrize("token", ["a" * 25, "Z9" * 16, "0" * 128])
def test_well_formed_tokens_are_recognised(token: str) -> None:
    assert is_well_formed_token(token)


def test_the_stored_digest_is_sha256_of_the_token() -> None:
    assert hash_token("abc").hex() == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    token = new_confirmation_token()
    assert hash_token(token) == hashlib.sha256(token.encode()).digest()
    assert hash_token(token) != hash_token(token + "x")


@pytest.mark.parametrize("spoof", ["\u202e", "\u2066", "\u200b"])
def test_names_with_direction_overrides_or_zero_width_spaces_are_rejected(spoof: str) -> None:
    with pytest.raises(ValidationError, match="control characters"):
        SubscriberName.parse(f"Ann{spoof}evil")


def test_names_with_emoji_joiners_are_accepted() -> None:
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    assert SubscriberName.parse(f"Ann {family}").value == f"Ann {family}"
