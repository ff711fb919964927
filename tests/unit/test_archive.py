"""The public archive's pure parts: the allow-list sanitiser, the cache validators, the
index's cursor and the feeds' XML-safe values."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from herald.archive import service as archive_service
from herald.archive.domain import Entry, Validators, parse_before, xml_safe
from herald.archive.sanitize import sanitize
from herald.core.errors import ValidationError
from herald.design.domain import Design
from herald.email.layout import Branding


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ('<p style="color:red" onclick="x()">Hi</p>', '<p style="color:red">Hi</p>'),
        ("<p>a<script>alert(1)</script>b</p>", "<p>ab</p>"),
        ('<a href="javascript:alert(1)">x</a>', '<a rel="noopener nofollow">x</a>'),
        ('<a href=" java\tscript:alert(1)">x</a>', '<a rel="noopener nofollow">x</a>'),
        ('<a href="//evil.example/">x</a>', '<a rel="noopener nofollow">x</a>'),
        (
            '<a href="https://e.example/?a=1&amp;b=2">x</a>',
            '<a href="https://e.example/?a=1&amp;b=2" rel="noopener nofollow">x</a>',
        ),
        ('<img src="x" onerror="alert(1)">', "<img>"),
        ('<img src="data:image/png;base64,AAAA">', '<img src="data:image/png;base64,AAAA">'),
        ('<img src="data:text/html;base64,AAAA">', "<img>"),
        ('<p style="width: expression(alert(1))">x</p>', "<p>x</p>"),
        ("<iframe src=x><p>inside</p></iframe>after", "after"),
        ("<svg><script>x</script><p>in svg</p></svg>after", "after"),
        ("<form><input name=a><button>Go</button>text</form>", "text"),
        ("<blink>kept text</blink>", "kept text"),
        (
            "<div><p>unclosed<table><tr><td>c",
            "<div><p>unclosed<table><tr><td>c</td></tr></table></p></div>",
        ),
        ("</p></div>stray ends", "stray ends"),
        ("<p>&lt;script&gt; &amp; &#x27;</p>", "<p>&lt;script&gt; &amp; '</p>"),
        ("<!-- a comment --><p>x</p>", "<p>x</p>"),
        ('<p title="&quot;><script>">q</p>', '<p title="&quot;&gt;&lt;script&gt;">q</p>'),
    ],
)
def test_the_sanitiser_keeps_formatting_and_drops_everything_active(
    html: str, expected: str
) -> None:
    assert sanitize(html) == expected


def test_deeply_nested_html_is_closed_not_crashed() -> None:
    assert sanitize("<div>" * 5000 + "x") == "<div>" * 5000 + "x" + "</div>" * 5000


def test_validators_answer_304_by_etag_first_then_by_date() -> None:
    changed = datetime(2026, 11, 1, 9, 30, 15, 123456, tzinfo=UTC)
    v = Validators.of("rss", "a", 1, last_modified=changed)
    assert v.etag.startswith('"')
    assert len(v.etag) == 34
    assert v.http_date == "Sun, 01 Nov 2026 09:30:15 GMT"
    assert v.not_modified(v.etag, None)
    assert v.not_modified(f'W/{v.etag}, "other"', None)
    assert v.not_modified("*", None)
    assert not v.not_modified('"other"', v.http_date), "If-None-Match wins"
    assert v.not_modified(None, v.http_date)
    assert v.not_modified(None, "Mon, 02 Nov 2026 00:00:00 GMT")
    assert not v.not_modified(None, "Sat, 31 Oct 2026 00:00:00 GMT")
    assert not v.not_modified(None, "not a date at all")
    assert not v.not_modified(None, None)
    assert Validators.of("atom", "a", 1, last_modified=changed).etag != v.etag


def test_the_index_cursor_is_a_slug_or_nothing() -> None:
    assert parse_before(None) is None
    assert parse_before("") is None
    assert parse_before("weekly-news-2") == "weekly-news-2"
    for bad in ("<script>", "a" * 101, "Upper", "a--b", "-a"):
        with pytest.raises(ValidationError, match="before"):
            parse_before(bad)


def test_xml_safe_drops_what_xml_cannot_hold() -> None:
    assert xml_safe("a\x00b\x01c\x1fd\ufffee\tf\ng") == "abcde\tf\ng"
    assert xml_safe("مرحبا 🎉") == "مرحبا 🎉"


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        (  # a void element inside a dropped one has no end tag to close it
            '<video controls><source src="v.mp4" type="video/mp4">No video</video><p>after</p>',
            "<p>after</p>",
        ),
        ("<audio><track src=t.vtt></audio><p>after</p>", "<p>after</p>"),
        ('<p>a</p><embed src="a.swf"><p>after</p>', "<p>a</p><p>after</p>"),
        ('<object data="a.swf"><embed src="a.swf"></object><p>after</p>', "<p>after</p>"),
        ("<select><option>a<option>b</select><p>after</p>", "<p>after</p>"),
        (  # a whole document pasted as the body: its head, then the body's content
            '<html><head><meta charset="utf-8"><title>T</title><style>p{}</style></head>'
            "<body><p>Hello</p></body></html>",
            "<p>Hello</p>",
        ),
        ("<head><title>T</title><body><p>Hello</p>", "<p>Hello</p>"),
    ],
)
def test_a_dropped_element_never_swallows_what_follows_it(html: str, expected: str) -> None:
    assert sanitize(html) == expected


def test_end_tags_that_close_nothing_are_read_in_one_pass() -> None:
    # A body (or a template's loop) of 150,000 unclosed <b> and as many </i>: each </i>
    # must not walk the open elements (that was 2 * 10^10 steps: hours per archive page).
    n = 150_000
    assert sanitize("<b>" * n + "</i>" * n + "x") == "<b>" * n + "x" + "</b>" * n


def test_a_copy_the_sanitiser_cannot_finish_in_time_is_no_copy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The standard library's HTMLParser rescans an unclosed start tag from every "<": a
    # template's loop of 20,000 "<a " (which the source's checks never see) is minutes of
    # CPU per request. Like the render, the sanitiser is time-limited: no copy (a 404).
    monkeypatch.setattr(archive_service, "SANITIZE_SECONDS", 0.2)
    entry = Entry(uuid.uuid4(), "hostile", "Hostile", "", datetime.now(UTC), datetime.now(UTC))
    links = archive_service.Links("https://news.example", "weekly")
    design = Design(version=1, branding=Branding())
    loop = "{% for i in range(10000) %}<a {% endfor %}"
    assert archive_service._anonymous_copy(entry, loop * 2, "x", design, links) is None
    other = Entry(uuid.uuid4(), "fine", "Fine", "", datetime.now(UTC), datetime.now(UTC))
    fine = archive_service._anonymous_copy(other, "<p>Hi</p>", "Hi", design, links)
    assert fine is not None
    assert "Hi" in fine


def test_a_copy_that_failed_is_not_tried_again_at_every_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each anonymous request of the page or the feed would otherwise spend the whole time
    # limit again on the same issue: a failure is remembered for a minute.
    monkeypatch.setattr(archive_service, "SANITIZE_SECONDS", 0.2)
    calls: list[int] = []

    def counted(html: str) -> str:
        calls.append(1)
        return sanitize(html)

    monkeypatch.setattr(archive_service, "sanitize", counted)
    entry = Entry(uuid.uuid4(), "hostile", "Hostile", "", datetime.now(UTC), datetime.now(UTC))
    links = archive_service.Links("https://news.example", "weekly")
    design = Design(version=1, branding=Branding())
    loop = "{% for i in range(10000) %}<a {% endfor %}" * 2
    for _ in range(3):
        assert archive_service._anonymous_copy(entry, loop, "x", design, links) is None
    assert len(calls) == 1
