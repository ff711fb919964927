"""The SMTP provider writes plain-ASCII messages' MIME itself (the stdlib took ~3 ms per
message, BENCHMARKS.md P1): whatever path a message takes, a mail reader must see the same
headers and bodies as the stdlib would have produced."""

from __future__ import annotations

import email
import email.policy

import pytest

from herald.email import smtp
from herald.email.message import EmailMessage
from herald.email.smtp import _render_plain, render_mime

HEADERS = (
    ("List-Unsubscribe", "<https://news.test/unsubscribe/one-click?token=abc-DEF_123>"),
    ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
    ("List-Id", "Herald News <news.herald.test>"),
)


def message(**changes: object) -> EmailMessage:
    fields: dict[str, object] = {
        "sender": "Herald News <news@herald.test>",
        "recipient": "reader@example.test",
        "subject": "Issue 12: what happened",
        "html_body": "<p>Hello <b>reader</b></p>\n<p>Bye</p>",
        "text_body": "Hello reader\n\nBye",
        "headers": HEADERS,
    }
    fields.update(changes)
    return EmailMessage(**fields)  # type: ignore[arg-type]


def seen_by_a_reader(raw: bytes) -> dict[str, object]:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, email.message.EmailMessage)
    assert parsed.get_content_type() == "multipart/alternative"
    parts = list(parsed.iter_parts())
    return {
        "headers": {
            name: str(parsed[name])
            for name in ("From", "To", "Subject", "Message-ID", "MIME-Version", *dict(HEADERS))
        },
        "types": [p.get_content_type() for p in parts],
        "bodies": [p.get_content().replace("\r\n", "\n").rstrip("\n") for p in parts],  # type: ignore[attr-defined]
    }


def stdlib_only(msg: EmailMessage, monkeypatch: pytest.MonkeyPatch) -> bytes:
    with monkeypatch.context() as patch:
        patch.setattr(smtp, "_render_plain", lambda *_: None)
        return render_mime(msg, message_id="<id@herald.test>")


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"text_body": "Grüße aus Köln — café", "html_body": "<p>Grüße — café</p>"},
        {"text_body": "x" * 200, "html_body": "<p>" + "y " * 300 + "</p>"},
        {"text_body": "line one\r\nline two\rline three"},
        {"sender": "news@herald.test", "recipient": "Ann Reader <ann@example.test>"},
        {"text_body": "=3D looks encoded but is not\n.leading dot\n"},
    ],
    ids=["ascii", "non-ascii-bodies", "long-lines", "mixed-newlines", "bare-addresses", "qp-like"],
)
def test_the_fast_path_reads_like_the_stdlib(
    changes: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    msg = message(**changes)
    fast = _render_plain(msg, "<id@herald.test>")
    assert fast is not None, "a plain-ASCII message should take the fast path"
    assert seen_by_a_reader(fast) == seen_by_a_reader(stdlib_only(msg, monkeypatch))
    assert all(len(line) <= 998 for line in fast.split(b"\r\n"))
    assert b"\n" not in fast.replace(b"\r\n", b"")


@pytest.mark.parametrize(
    "changes",
    [
        {"subject": "Grüße"},
        {"sender": "Zoë <news@herald.test>"},
        {"sender": '"Herald, Inc." <news@herald.test>'},
        {"recipient": "ann@exämple.test"},
        {"headers": (("Reply-To", "editor@herald.test"),)},
        {"headers": (("X-Note", "=?utf-8?q?looks_encoded?="),)},
        {"headers": (("X-Long", "v" * 1000),)},
    ],
    ids=["subject", "display-name", "quoted-name", "idn", "own-header", "encoded-word", "long"],
)
def test_anything_unusual_goes_the_stdlib_way(changes: dict[str, object]) -> None:
    assert _render_plain(message(**changes), "<id@herald.test>") is None
