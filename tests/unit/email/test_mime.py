"""The MIME the SMTP provider sends: structure, and headers kept verbatim on one line."""

from __future__ import annotations

import email
import email.policy
import re

import pytest

from herald.email.message import EmailMessage
from herald.email.smtp import new_message_id, render_mime

LONG_URL = "https://news.herald.test/subscriptions/unsubscribe?token=" + "Ab9-" * 24
UNSUBSCRIBE = f"<{LONG_URL}>"


def message(**changes: object) -> EmailMessage:
    fields: dict[str, object] = {
        "sender": "Herald News <news@herald.test>",
        "recipient": "reader@example.test",
        "subject": "Issue #12: what happened this week",
        "html_body": "<p>Hello <b>reader</b></p>",
        "text_body": "Hello reader",
        "headers": (
            ("List-Unsubscribe", UNSUBSCRIBE),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ),
    }
    fields.update(changes)
    return EmailMessage(**fields)  # type: ignore[arg-type]


def header_block(raw: bytes) -> list[str]:
    return raw.split(b"\r\n\r\n", 1)[0].decode("ascii").split("\r\n")


def parse(raw: bytes) -> email.message.EmailMessage:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, email.message.EmailMessage)
    return parsed


def test_long_list_unsubscribe_is_one_verbatim_line() -> None:
    assert len(LONG_URL) >= 150

    raw = render_mime(message(), message_id="<id@herald.test>")

    lines = header_block(raw)
    assert f"List-Unsubscribe: {UNSUBSCRIBE}" in lines
    assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in lines
    assert b"=?" not in raw.split(b"\r\n\r\n", 1)[0]


@pytest.mark.parametrize("length", [79, 150, 400, 900])
def test_no_ascii_header_up_to_the_rfc_limit_is_folded_or_encoded(length: int) -> None:
    value = "<https://h.test/u?t=" + "x" * (length - 21) + ">"
    assert len(value) == length

    raw = render_mime(message(headers=(("List-Unsubscribe", value),)), message_id="<i@h.test>")

    assert f"List-Unsubscribe: {value}" in header_block(raw)


def test_long_ascii_subject_with_spaces_is_not_wrapped() -> None:
    subject = "A fairly long subject line " * 5

    raw = render_mime(message(subject=subject.strip()), message_id="<i@h.test>")

    assert f"Subject: {subject.strip()}" in header_block(raw)


def test_structure_is_alternative_text_then_html() -> None:
    raw = render_mime(message(), message_id="<abc@herald.test>")

    parsed = parse(raw)
    assert parsed.get_content_type() == "multipart/alternative"
    parts = list(parsed.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert parts[0].get_content().strip() == "Hello reader"
    assert parts[1].get_content().strip() == "<p>Hello <b>reader</b></p>"
    assert all("MIME-Version" not in p for p in parts)
    assert parsed["From"] == "Herald News <news@herald.test>"
    assert parsed["To"] == "reader@example.test"
    assert parsed["Subject"] == "Issue #12: what happened this week"
    assert parsed["Message-ID"] == "<abc@herald.test>"
    assert re.search(r"\d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2}", parsed["Date"])
    assert parsed["List-Unsubscribe"] == UNSUBSCRIBE


def test_non_ascii_content_round_trips_and_wire_is_seven_bit() -> None:
    raw = render_mime(
        message(subject="Grüße aus Köln", text_body="Déjà vu " * 40, html_body="<p>€</p>"),
        message_id="<i@h.test>",
    )

    assert raw.isascii()
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    parsed = parse(raw)
    assert parsed["Subject"] == "Grüße aus Köln"
    text, html = parsed.iter_parts()
    assert text.get_content().strip() == ("Déjà vu " * 40).strip()
    assert html.get_content().strip() == "<p>€</p>"


def test_extra_header_may_replace_a_single_occurrence_header() -> None:
    raw = render_mime(
        message(headers=(("Reply-To", "a@h.test"), ("Subject", "Override"))),
        message_id="<i@h.test>",
    )

    parsed = parse(raw)
    assert parsed.get_all("Subject") == ["Override"]
    assert parsed["Reply-To"] == "a@h.test"


def test_header_value_with_line_break_is_refused() -> None:
    with pytest.raises(ValueError, match=r"linefeed|carriage"):
        render_mime(message(headers=(("X-Evil", "a\r\nBcc: x@y.z"),)), message_id="<i@h.test>")


@pytest.mark.parametrize("name", ["X-Evil\r\nBcc", "Bad Name", "No:Colon", ""])
def test_invalid_header_name_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="invalid header name"):
        render_mime(message(headers=((name, "v"),)), message_id="<i@h.test>")


def test_message_id_uses_the_sender_domain_and_is_unique() -> None:
    first = new_message_id("Herald <news@herald.test>")
    second = new_message_id("news@herald.test")

    assert first != second
    assert re.fullmatch(r"<[^<>@\s]+@herald\.test>", first)
    assert new_message_id("not an address").endswith("@herald.localhost>")
