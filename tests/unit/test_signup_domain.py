"""The sign-up's pure rules (subscriptions/signup.py): list fields, source, consent, plan."""

from __future__ import annotations

import re
import uuid

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from herald.core.errors import ValidationError
from herald.lists.domain import parse_slug
from herald.subscriptions.domain import SubscriptionStatus, SuppressionReason
from herald.subscriptions.signup import (
    MAX_LISTS,
    ChosenList,
    Consent,
    OptIn,
    SignUp,
    parse_lists,
    plan,
)


@pytest.mark.parametrize(
    ("raw", "slugs"),
    [
        (None, ()),
        ("weekly", ("weekly",)),
        (["weekly", "events", "weekly", " events "], ("weekly", "events")),
        (["", "  "], ()),
        (["a"] * MAX_LISTS, ("a",)),
    ],
)
def test_list_fields_become_slugs_without_repeats(raw: object, slugs: tuple[str, ...]) -> None:
    assert parse_lists(raw) == slugs


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (["a"] * (MAX_LISTS + 1), "too many lists: at most 20"),
        ([""] * 10_000, "got 10,000 list fields"),
        (7, "list must be a list slug"),
        ([1], "list must be a list slug"),
        ({"a": 1}, "list must be a list slug"),
        (["Weekly"], "'Weekly' does not exist"),
        (["a--b"], "'a--b' does not exist"),
        (["x" * 61], "does not exist"),
    ],
)
def test_bad_list_fields_are_400_naming_the_field(raw: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as caught:
        parse_lists(raw)
    assert caught.value.field == "list"


def test_a_huge_slug_is_named_shortened() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_lists(["x" * 5000])
    assert len(caught.value.message) < 120


@pytest.mark.parametrize(
    ("source", "recorded"),
    [(None, "form"), ("", "form"), ("l/weekly", "form:l/weekly"), (" l/a-b ", "form:l/a-b")],
)
def test_the_source_is_the_form_or_a_list_page(source: object, recorded: str) -> None:
    assert Consent.of_form(source_page=source, ip="::1", user_agent=None).source == recorded


@pytest.mark.parametrize("source", ["x", "l/", "/l/weekly", "l/a/b", 5, "l/" + "a" * 61])
def test_any_other_source_is_refused(source: object) -> None:
    with pytest.raises(ValidationError) as caught:
        Consent.of_form(source_page=source, ip="::1", user_agent=None)
    assert caught.value.field == "source"


@pytest.mark.parametrize(
    ("ip", "stored"),
    [("203.0.113.9", "203.0.113.9"), ("::1", "::1"), ("unknown", None), ("testclient", None)],
)
def test_the_consent_ip_is_an_address_or_nothing(ip: str, stored: str | None) -> None:
    assert Consent.of_form(source_page=None, ip=ip, user_agent=None).ip == stored


def test_the_user_agent_is_cut_to_500_characters() -> None:
    consent = Consent.of_form(source_page=None, ip="::1", user_agent="é" * 2000)
    assert consent.user_agent == "é" * 500
    assert Consent.of_form(source_page=None, ip="::1", user_agent="").user_agent is None


def test_the_name_and_email_are_checked_first() -> None:
    with pytest.raises(ValidationError, match="email is missing"):
        SignUp.parse(name="Ann", email=None, lists=["x"] * 50, source=None, ip="", user_agent="")
    signup = SignUp.parse(
        name="Ann", email="ann@example.com", lists=None, source=None, ip="", user_agent=None
    )
    assert signup.slugs == ("default",)
    assert not signup.chose_lists


SINGLE = ChosenList(uuid.uuid4(), "news", OptIn.SINGLE)
DOUBLE = ChosenList(uuid.uuid4(), "weekly", OptIn.DOUBLE)


def test_a_new_address_on_single_lists_only_is_confirmed_at_once() -> None:
    assert plan(None, [SINGLE], force_double=False).confirm_address
    mixed = plan(None, [SINGLE, DOUBLE], force_double=False)
    assert (mixed.confirm_now, mixed.confirm_address) == ((True, False), False)


@pytest.mark.parametrize(
    ("status", "force"),
    [(None, True), (SubscriptionStatus.UNSUBSCRIBED, False)],
)
def test_a_reader_who_left_everything_comes_back_through_double_opt_in(
    status: SubscriptionStatus | None, force: bool
) -> None:
    again = plan(status, [SINGLE], force_double=force)
    assert (again.confirm_now, again.confirm_address) == ((False,), False)


def test_only_unsubscribed_does_not_block_a_sign_up() -> None:
    assert [r for r in SuppressionReason if not r.blocks_sign_up] == [
        SuppressionReason.UNSUBSCRIBED
    ]


@given(st.text(alphabet="ab9-Z _\u00e9", min_size=1, max_size=70))
def test_a_sign_up_names_exactly_the_slugs_a_list_may_have(text: str) -> None:
    """One slug rule (lists.domain): a list field is refused only where a list could not
    have that slug, so a list that exists can always be chosen."""
    slug = text.strip()
    assume(slug)
    try:
        parse_slug(slug)
    except ValidationError:
        with pytest.raises(ValidationError):
            parse_lists([text])
    else:
        assert parse_lists([text]) == (slug,)


def test_the_suppression_reasons_are_the_database_s_and_one_enum() -> None:
    # The sign-up's check and the suppression list's pages read the same column: one
    # enum, holding exactly the values migration 0018's CHECK allows (a value the enum
    # lacked would make the sign-up's read of a suppression a 500).
    from pathlib import Path

    from herald.suppressions.domain import Reason

    snapshot = Path(__file__).parents[1] / "integration" / "schema_snapshot.txt"
    check = next(
        line for line in snapshot.read_text().splitlines() if "suppressions_reason_check" in line
    )
    allowed = re.findall(r"'([a-z_]+)'::text", check)
    assert sorted(allowed) == sorted(r.value for r in SuppressionReason)
    assert Reason is SuppressionReason
