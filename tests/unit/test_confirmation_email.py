"""The confirmation email: to the new address, with one and the same link in both bodies."""

from __future__ import annotations

import html
import re

import pytest

from herald.email.message import EmailMessage
from herald.subscriptions.domain import NewSubscriber, new_confirmation_token
from herald.subscriptions.emails import (
    CONFIRMATION_SUBJECT,
    confirmation_email,
    confirmation_link,
)

BASE_URL = "https://news.herald-demo.org"
SENDER = "Herald <news@herald-demo.org>"
LINK = re.compile(r"https?://[^\s\"'<>]+")


def email_for(
    name: str = "Ursula", *, token: str = "A" * 32, ttl_hours: float = 168
) -> EmailMessage:
    subscriber = NewSubscriber.parse(name=name, email="Ursula@Example.COM")
    return confirmation_email(
        subscriber, token=token, base_url=BASE_URL, sender=SENDER, ttl_hours=ttl_hours
    )


def links_in_html(body: str) -> list[str]:
    """Links as a mail client would follow them (attribute values unescaped)."""
    return [html.unescape(link) for link in LINK.findall(body)]


def test_it_goes_from_the_sender_to_the_subscriber() -> None:
    message = email_for()
    assert message.recipient == "Ursula@example.com"
    assert message.sender == SENDER
    assert message.subject == CONFIRMATION_SUBJECT
    assert message.headers == ()


def test_both_bodies_carry_the_same_single_confirmation_link() -> None:
    token = new_confirmation_token()
    message = email_for(token=token)
    expected = f"{BASE_URL}/subscriptions/confirm?subscription_token={token}"
    assert set(LINK.findall(message.text_body)) == {expected}
    assert LINK.findall(message.text_body) == [expected]
    assert set(links_in_html(message.html_body)) == {expected}
    assert f'href="{expected}"' in message.html_body


def test_the_html_link_is_the_only_anchor() -> None:
    message = email_for()
    assert message.html_body.count("<a ") == 1


def test_the_link_is_built_from_the_base_url() -> None:
    assert (
        confirmation_link("http://127.0.0.1:8000", "abc123")
        == "http://127.0.0.1:8000/subscriptions/confirm?subscription_token=abc123"
    )


@pytest.mark.parametrize(
    ("name", "escaped"),
    [
        ("Tom & Jerry", "Tom &amp; Jerry"),
        ("O'Brien", "O&#39;Brien"),
        ("Ana & O'Hara", "Ana &amp; O&#39;Hara"),
    ],
)
def test_the_name_is_html_escaped_in_the_html_body(name: str, escaped: str) -> None:
    message = email_for(name)
    assert f"Hello {escaped}," in message.html_body
    assert name not in message.html_body
    assert f"Hello {name}," in message.text_body  # plain text needs no escaping


def test_the_name_greets_the_reader() -> None:
    message = email_for("  Ursula Le Guin  ")
    assert "Hello Ursula Le Guin," in message.text_body
    assert "Hello Ursula Le Guin," in message.html_body


@pytest.mark.parametrize(
    ("ttl_hours", "shown"), [(168, "7 days"), (48, "2 days"), (1, "1 hour"), (36, "36 hours")]
)
def test_the_validity_is_stated_in_both_bodies(ttl_hours: float, shown: str) -> None:
    message = email_for(ttl_hours=ttl_hours)
    assert f"valid for {shown}." in message.text_body
    assert f"valid for {shown}." in message.html_body
