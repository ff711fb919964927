"""The plain-text part of emails (herald.email.plaintext): golden files and hostile input.

Every ``*.html`` in tests/fixtures/plaintext/ (and every ``*.md``, rendered by Herald's own
Markdown) has the text it must become next to it, in a ``*.txt``. After a deliberate change
to the converter, regenerate them, then read every difference before committing it:

    HERALD_UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/test_plaintext.py
"""

from __future__ import annotations

import difflib
import os
import re
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from herald.email.plaintext import html_to_text
from herald.email.text_lines import columns
from herald.issues.markdown import markdown_to_html

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "plaintext"
UPDATE_ENV = "HERALD_UPDATE_GOLDEN"
SOURCES = sorted(path for path in FIXTURES.iterdir() if path.suffix in {".html", ".md"})
WIDTH = 78


def convert(source: Path) -> str:
    raw = source.read_text(encoding="utf-8")
    return html_to_text(markdown_to_html(raw) if source.suffix == ".md" else raw)


@pytest.mark.parametrize("source", SOURCES, ids=lambda path: path.name)
def test_the_text_is_the_golden_file(source: Path) -> None:
    actual = convert(source) + "\n"
    golden = source.with_suffix(".txt")
    if os.environ.get(UPDATE_ENV) == "1":
        golden.write_text(actual, encoding="utf-8")
        return
    expected = golden.read_text(encoding="utf-8") if golden.exists() else ""
    assert actual == expected, (
        f"{source.name} no longer converts to {golden.name}. If the change is meant, "
        f"regenerate and review:\n    {UPDATE_ENV}=1 .venv/bin/pytest {__file__}\n\n"
        + "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                f"{golden.name} (committed)",
                "converted now",
            )
        )
    )


def test_every_fixture_has_its_golden_file() -> None:
    assert len(SOURCES) >= 15
    missing = [path.name for path in SOURCES if not path.with_suffix(".txt").exists()]
    assert not missing


@pytest.mark.parametrize("source", SOURCES, ids=lambda path: path.name)
def test_lines_fit_where_words_allow(source: Path) -> None:
    """A line wider than 78 columns is a code line kept verbatim or one unbreakable word
    (a URL) after its quote or list prefix; no trailing spaces; no run of blank lines
    outside code blocks."""
    text = convert(source)
    raw = source.read_text(encoding="utf-8")
    for line in text.splitlines():
        assert line == line.rstrip()
        if columns(line) > WIDTH and line.strip() not in raw:
            assert len(line.lstrip("> ").split()) == 1, line
    if "<pre" not in raw and "```" not in raw:
        assert "\n\n\n" not in text


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ('<a href="https://x.org/a">this</a>', "this (https://x.org/a)"),
        ('<a href="https://x.org/a">https://x.org/a</a>', "https://x.org/a"),
        ('<a href="https://www.x.org/">x.org</a>', "https://www.x.org/"),
        ('<a href="mailto:ed@x.org">ed@x.org</a>', "ed@x.org"),
        ('<a href="mailto:ed@x.org?subject=Hi">Ed</a>', "Ed (ed@x.org)"),
        ('<a href="#top">top</a>', "top"),
        ('<a href="{{ unsubscribe_url }}">unsubscribe</a>', "unsubscribe ({{ unsubscribe_url }})"),
        ('<img src="a.png" alt="A chart">', "A chart"),
        ('<img src="a.png">', ""),
        ("<ul><li>a</li><li>b</li></ul>", "- a\n- b"),
        ("<ol><li>a</li><li>b</li></ol>", "1. a\n2. b"),
        ("<h1>Hi</h1>", "Hi\n=="),
        ("<h2>Hi</h2>", "Hi\n--"),
        ("<h3>Hi</h3><p>x</p>", "Hi\n\nx"),
        ("<blockquote><p>a</p><blockquote>b</blockquote></blockquote>", "> a\n>\n> > b"),
        ("<pre>  a\n\n\n  b</pre>", "  a\n\n\n  b"),
        ("<p>caf&eacute; &amp; &lt;b&gt; &#x1F600;</p>", "café & <b> 😀"),
    ],
)
def test_rules(html: str, text: str) -> None:
    assert html_to_text(html) == text


@pytest.mark.parametrize("html", ["", "   \n ", "<p></p>", "<!-- only a comment -->", "<br>"])
def test_nothing_to_say_is_an_empty_text(html: str) -> None:
    assert html_to_text(html) == ""


DEEP = {
    "div": ("<div>", "</div>"),
    "list": ("<ul><li>", "</li></ul>"),
    "ordered list": ("<ol><li>", ""),
    "quote": ("<blockquote>", "</blockquote>"),
    "table": ("<table><tr><td>", ""),
    "inline": ('<a href="https://x.org"><span><b>', ""),
    "mixed": ("<div><ul><li><blockquote><table><tr><td><p><b><a href=x>", ""),
}


@pytest.mark.parametrize("kind", DEEP)
def test_ten_thousand_levels_of_nesting_stay_cheap(kind: str) -> None:
    """Elements below MAX_DEPTH join the one at that depth: no recursion error, no
    quadratic time, the text kept and the lines still within the width. The bound is
    generous: every kind takes well under 0.2 s of CPU."""
    opening, closing = DEEP[kind]
    html = opening * 10_000 + "the deepest words " * 20 + closing * 10_000
    started = time.process_time()
    text = html_to_text(html)
    assert time.process_time() - started < 1.0
    assert "the deepest words" in text
    assert max(map(columns, text.splitlines())) <= WIDTH


def test_a_two_megabyte_body() -> None:
    """The largest body the issue forms accept (2 MiB), of every construct at once."""
    chunk = (FIXTURES / "issue-pasted.html").read_text(encoding="utf-8") + markdown_to_html(
        (FIXTURES / "issue-weekly.md").read_text(encoding="utf-8")
    )
    html = chunk * (2 * 1024 * 1024 // len(chunk.encode()))
    text = html_to_text(html)
    assert text.count("Bulk actions on up to a million subscribers") == html.count(
        "Bulk actions on up to a million subscribers"
    )
    assert "\n\n\n" not in text
    assert max(map(columns, text.splitlines())) <= WIDTH


_WORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyzé", min_size=1, max_size=12)
_TEXT = st.lists(_WORDS, min_size=1, max_size=8).map(" ".join)
_LEAF = st.one_of(
    _TEXT,
    _TEXT.map(lambda words: f'<img src="x.png" alt="{words}">'),
    st.just("<br>"),
)


def _nest(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    inner = st.lists(children, min_size=1, max_size=4).map(" ".join)
    cells = st.lists(inner, min_size=1, max_size=4)
    tags = ["p", "div", "span", "b", "blockquote", "h1", "h2", "h3"]
    return st.one_of(
        st.tuples(st.sampled_from(tags), inner).map(
            lambda pair: f"<{pair[0]}>{pair[1]}</{pair[0]}>"
        ),
        inner.map(lambda html: f'<a href="https://example.org/page">{html}</a>'),
        st.tuples(st.sampled_from(["ul", "ol"]), cells).map(
            lambda pair: f"<{pair[0]}>{''.join(f'<li>{c}</li>' for c in pair[1])}</{pair[0]}>"
        ),
        st.lists(cells, min_size=1, max_size=4).map(
            lambda rows: (
                "<table>"
                + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
                + "</table>"
            )
        ),
    )


@settings(max_examples=300, deadline=None)
@given(st.recursive(_LEAF, _nest, max_leaves=25))
def test_any_nesting_keeps_every_word_fits_the_width_and_never_doubles_blank_lines(
    html: str,
) -> None:
    text = html_to_text(html)
    words = set(re.sub(r"[():]", " ", text).split())
    alts = " ".join(re.findall(r'alt="([^"]*)"', html))
    assert set(f"{re.sub(r'<[^>]*>', ' ', html)} {alts}".split()) <= words
    assert "\n\n\n" not in text
    for line in text.splitlines():
        assert line == line.rstrip()
        assert columns(line) <= WIDTH
