"""Outgoing webhooks' pure rules: endpoint URLs (https; http only in development and only to
this machine or a private network; no credentials, fragments, spaces), event types,
secrets, and the signature — checked by the ``standardwebhooks`` package, which no one
here wrote."""

from __future__ import annotations

import base64
import json
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from herald.core.errors import ValidationError
from herald.webhooks.domain import (
    MAX_EXCERPT,
    EventType,
    clip,
    excerpt,
    new_secret,
    parse_event_types,
    parse_url,
    sign,
    signed_headers,
)


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/hooks/herald",
        "https://example.com:8443/h?x=1",
        "https://[2606:4700:4700::1111]/h",
        "  https://example.com/padded  ",
    ],
)
def test_https_urls_are_accepted_everywhere(url: str) -> None:
    assert parse_url(url, development=False) == url.strip()
    assert parse_url(url, development=True) == url.strip()


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:9000/h", "http://localhost/h", "http://10.1.2.3/h", "http://[::1]/h"],
)
def test_plain_http_only_in_development_and_only_locally(url: str) -> None:
    assert parse_url(url, development=True) == url
    with pytest.raises(ValidationError, match="https://"):
        parse_url(url, development=False)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://example.com/h", "https://"),  # plain http to the internet, even in development
        ("ftp://example.com/h", "https://"),
        ("javascript:alert(1)", "https://"),
        ("https://user:pw@example.com/h", "user name or password"),
        ("https://example.com/h#frag", "fragment"),
        ("https:///h", "no host"),
        ("https://exa mple.com/h", "spaces"),
        ("https://example.com/\x00", "control"),
        ("https://example.com:99999/h", "not valid"),
        ("https://example.com:0/h", "port"),
        ("", "Enter"),
        ("https://example.com/" + "a" * 2000, "longer"),
    ],
)
def test_bad_urls_are_refused_naming_the_problem(url: str, says: str) -> None:
    with pytest.raises(ValidationError, match=says) as refused:
        parse_url(url, development=True)
    assert refused.value.field == "url"


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/h",
        "https://localhost/h",
        "https://192.168.1.5/h",
        "https://169.254.169.254/latest",
    ],
)
def test_production_refuses_local_and_private_addresses(url: str) -> None:
    with pytest.raises(ValidationError, match="private network"):
        parse_url(url, development=False)


def test_event_types_are_checked_and_deduplicated() -> None:
    assert parse_event_types(["issue.sent", "subscriber.created", "issue.sent"]) == (
        EventType.SUBSCRIBER_CREATED,
        EventType.ISSUE_SENT,
    )
    with pytest.raises(ValidationError, match="at least one"):
        parse_event_types([])
    with pytest.raises(ValidationError, match="Unknown event type 'x" + "x" * 39 + "…'"):
        parse_event_types(["x" * 500])


def test_every_event_type_has_a_description() -> None:
    assert all(t.description for t in EventType)


def test_signatures_verify_with_the_standard_webhooks_library() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret[6:])) == 32
    body = json.dumps({"type": "issue.sent", "data": {"title": "Grüße"}}).encode()
    now = int(time.time())
    headers = signed_headers(secret, "msg_1", now, body)
    assert Webhook(secret).verify(body, headers) == json.loads(body)
    assert headers["webhook-signature"] == sign(secret, "msg_1", now, body)
    with pytest.raises(WebhookVerificationError):  # another body
        Webhook(secret).verify(body + b" ", headers)
    with pytest.raises(WebhookVerificationError):  # another secret
        Webhook(new_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):  # too old: the library refuses replays
        Webhook(secret).verify(body, signed_headers(secret, "msg_1", now - 3600, body))


def test_excerpts_are_bounded_and_printable() -> None:
    text = excerpt(b"\x00\x01ok \xff" + b"x" * 5000)
    assert len(text) == MAX_EXCERPT
    assert text.startswith("ok \ufffd")
    assert clip("abc", 2) == "a…"
