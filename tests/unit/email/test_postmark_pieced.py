"""A layout-rendered HTML body (``Pieced``) encodes to exactly the JSON a plain string does;
its literal pieces are encoded once."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from herald.email import postmark
from herald.email.message import EmailMessage, Pieced
from herald.email.postmark import _encode, _encode_batch, _to_postmark

LAYOUT = ('<!doctype html><p class="a">', '</p><div>\u00e9 \\ \n</div><a href="', '">x</a>')


def pieced(values: list[str]) -> Pieced:
    pieces: list[str] = [LAYOUT[0]]
    for literal, value in zip(LAYOUT[1:], values, strict=True):
        pieces += [value, literal]
    return Pieced.of(pieces)


def message(html: str, headers: tuple[tuple[str, str], ...] = ()) -> EmailMessage:
    return EmailMessage("Herald <n@h.test>", "r@x.test", 'Subject "q"', html, "text", headers)


@given(st.lists(st.text(), min_size=2, max_size=2), st.booleans())
def test_a_pieced_body_encodes_like_its_string(values: list[str], with_headers: bool) -> None:
    html = pieced(values)
    assert html == "".join(html.pieces)
    headers = (("List-Id", '"HtmlBody":""'),) if with_headers else ()
    expected = json.JSONEncoder(separators=(",", ":")).encode(
        _to_postmark(message(str(html), headers))
    )
    assert _encode(message(html, headers)) == expected.encode("ascii")
    assert json.loads(expected)["HtmlBody"] == html


def test_literal_pieces_are_encoded_once_and_the_cache_is_bounded() -> None:
    postmark._LITERALS.clear()
    for n in range(3):
        _encode(message(pieced([f"v{n}", f"w{n}"])))
    assert set(postmark._LITERALS) == set(LAYOUT)
    for n in range(postmark._MAX_LITERALS + 5):
        _encode(message(Pieced.of([f"literal {n}"])))
    assert len(postmark._LITERALS) <= postmark._MAX_LITERALS


def test_a_batch_is_the_json_array_of_its_messages() -> None:
    messages = [message(pieced([f"v{n}", f"w{n}"])) for n in range(3)] + [message("<p>plain</p>")]
    expected = json.JSONEncoder(separators=(",", ":")).encode(
        [_to_postmark(message(str(m.html_body))) for m in messages]
    )
    assert _encode_batch(messages) == expected.encode("ascii")


ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()))  # surrogates included


@given(
    ANY_TEXT,
    ANY_TEXT,
    ANY_TEXT,
    ANY_TEXT,
    ANY_TEXT,
    st.lists(st.tuples(ANY_TEXT, ANY_TEXT), max_size=3),
    st.booleans(),
    st.none() | st.integers(1, 2**63 - 1),
)
def test_every_message_encodes_as_the_stdlib_encodes_its_payload(
    sender: str,
    recipient: str,
    subject: str,
    html: str,
    text: str,
    headers: list[tuple[str, str]],
    as_pieces: bool,
    delivery_id: int | None,
) -> None:
    body = pieced([html, text]) if as_pieces else html
    message_ = EmailMessage(sender, recipient, subject, body, text, tuple(headers), delivery_id)
    expected = json.JSONEncoder(separators=(",", ":")).encode(
        _to_postmark(
            EmailMessage(sender, recipient, subject, str(body), text, tuple(headers), delivery_id)
        )
    )
    assert _encode(message_) == expected.encode("ascii")


def test_the_delivery_id_travels_in_metadata_as_the_webhook_parser_reads_it() -> None:
    from herald.deliverability import postmark as webhooks

    sent = message("<p>x</p>").for_delivery(123)
    assert json.loads(_encode(sent))["Metadata"] == {"herald_delivery": "123"}
    batch = json.loads(_encode_batch([sent, message("<p>y</p>").for_delivery(9)]))
    assert [m["Metadata"] for m in batch] == [{"herald_delivery": "123"}, {"herald_delivery": "9"}]
    assert "Metadata" not in json.loads(_encode(message("<p>x</p>")))
    assert webhooks.METADATA_KEY == postmark.METADATA_KEY
