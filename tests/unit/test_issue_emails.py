"""An issue's email: the content in the layout, the layout's CSS inlined into every element
of the content, a complete document well under Gmail's clipping size."""

from __future__ import annotations

import random
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from herald.email.layout import Branding
from herald.issues.domain import IssueContent
from herald.issues.preheaders import preheader
from herald.issues.rendering import compile_issue, issue_email
from herald.subscriptions.domain import NewSubscriber
from herald.subscriptions.emails import confirmation_email

FIXTURES = Path(__file__).parents[1] / "fixtures" / "emails"
GMAIL_CLIP_BYTES = 102 * 1024
VOID = {"br", "img", "hr", "wbr", "input", "meta", "link", "col", "source"}
UNSUBSCRIBE = "https://news.herald.test/unsubscribe/one-click?token=abc&x=1"


def fixture_issue() -> IssueContent:
    return IssueContent.parse(
        title="Issue 42: what happened this week",
        markdown=(FIXTURES / "every_construct.md").read_text(encoding="utf-8"),
    )


def render_fixture(name: str = "Ada Lovelace") -> tuple[str, str]:
    issue = fixture_issue()
    compiled = compile_issue(issue.title, issue.html, issue.text, Branding(name="Acme Weekly"))
    return compiled.render(
        name=name, email="ada@example.org", unsubscribe_url=UNSUBSCRIBE, view_url=""
    )


class ContentArea(HTMLParser):
    """The elements inside the layout's content cell (``class="h-content …"``)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.depth = 0  # > 0 inside the content cell
        self.elements: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if self.depth:
            self.elements.append((tag, attributes))
            if tag not in VOID:
                self.depth += 1
        elif tag == "td" and "h-content" in (attributes.get("class") or "").split():
            self.depth = 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.depth:
            self.elements.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if self.depth and tag not in VOID:
            self.depth -= 1


def content_elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = ContentArea()
    parser.feed(html)
    return parser.elements


def test_the_fixture_is_a_complete_document_well_under_gmails_clip() -> None:
    html, _ = render_fixture()
    assert html.startswith("<!doctype html><html")
    for tag in ("<head>", "</head>", "<body", "</body>", "</html>"):
        assert tag in html
    assert len(html.encode()) < GMAIL_CLIP_BYTES / 4


def test_every_element_of_the_content_carries_inline_styles() -> None:
    html, _ = render_fixture()
    elements = content_elements(html)
    tags = {tag for tag, _ in elements}
    # every Markdown construct is in the fixture
    assert {"h1", "h2", "h3", "p", "a", "strong", "em", "code", "pre", "ul", "ol", "li"} <= tags
    assert {"blockquote", "table", "thead", "tbody", "tr", "th", "td", "img", "hr", "br"} <= tags
    unstyled = [tag for tag, attrs in elements if tag != "br" and not attrs.get("style")]
    assert unstyled == []
    styles = {tag: attrs.get("style") for tag, attrs in elements}
    assert "max-width:100%" in (styles["img"] or "")
    assert "color:#3451c7" in (styles["a"] or "")


def test_the_subscriber_is_escaped_everywhere() -> None:
    hostile = '<script>alert("x")</script> O\'Hara'
    html, text = render_fixture(hostile)
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert hostile in text  # plain text needs no escaping


def test_the_preheader_is_the_start_of_the_text() -> None:
    html, text = render_fixture()
    hidden = html[html.index("<div style='display:none;") :]
    hidden = hidden[hidden.index(">") + 1 : hidden.index("&zwnj;")]
    assert hidden == preheader(text)
    assert hidden.startswith("Issue 42: what happened this week")
    assert len(hidden) <= 101


def test_an_issue_s_own_preheader_replaces_the_derived_one_and_is_escaped() -> None:
    compiled = compile_issue(
        "Title",
        "<p>Hello {{ subscriber.name }}</p>",
        "Hello {{ subscriber.name }}",
        preheader="  Five  links <worth> your time ",
    )
    for view_url in ("", "https://news.herald.test/v/abc"):
        html, _ = compiled.render(
            name="Ada", email="ada@example.com", unsubscribe_url=UNSUBSCRIBE, view_url=view_url
        )
        hidden = html[html.index("<div style='display:none;") :]
        hidden = hidden[hidden.index(">") + 1 : hidden.index("&zwnj;")]
        assert hidden == "Five links &lt;worth&gt; your time"
        assert "Hello Ada" in html


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Short text.", "Short text."),
        ("  Lines\n\nand   spaces  ", "Lines and spaces"),
        ("word " * 40, ("word " * 20).strip() + "…"),
        (
            "Title\n=====\n\nSee the log (https://x.test/log?a=1) now.\n\n- one\n- two",
            "Title See the log now. one two",
        ),
    ],
)
def test_preheaders(text: str, expected: str) -> None:
    assert preheader(text) == expected


def _preheader_reference(text: str, limit: int = 100) -> str:
    """The plain definition: every word of the first 400 characters, minus link targets
    and words of rule characters only, cut at the limit."""
    head = re.sub(r"\s*\(https?://[^\s)]*\)", "", text[: limit * 4])
    words = " ".join(w for w in head.split() if not re.fullmatch(r"[-=_*~#+]+", w))
    if len(words) <= limit:
        return words
    return words[:limit].rsplit(" ", 1)[0].rstrip(".,;:-") + "…"


def test_the_fast_preheader_agrees_with_its_definition() -> None:
    pieces = [
        "word",
        "longerword",
        "-",
        "==",
        "***",
        "#",
        "a",
        "(https://x.test/p?q=1)",
        "see(https://x.test/y)",
        "(https://x.test/" + "long" * 30 + ")",
        "a" * 90,
        "\n",
        "\n\n",
        "  ",
        "é",
        "x-y",
        "--flag",
        "…",
    ]
    chooser = random.Random(14)
    for _ in range(5000):
        text = " ".join(chooser.choice(pieces) for _ in range(chooser.randrange(0, 120)))
        assert preheader(text) == _preheader_reference(text), text


def test_the_text_part_keeps_its_plain_footer() -> None:
    _, text = render_fixture()
    assert text.endswith(f"You receive this because you subscribed. Unsubscribe: {UNSUBSCRIBE}\n")


def test_the_footer_names_the_newsletter_and_links_the_unsubscribe() -> None:
    message = issue_email(
        compile_issue("T", "<p>Body</p>", "Body", Branding(name="Acme Weekly")),
        sender="news@acme.test",
        recipient="a@example.com",
        name="A",
        unsubscribe_url=UNSUBSCRIBE,
        base_url="https://news.herald.test",
        view_url="https://news.herald.test/view/1",
    )
    assert "You receive this because you subscribed to Acme Weekly." in message.html_body
    assert f'<a href="{UNSUBSCRIBE.replace("&", "&amp;")}"' in message.html_body
    assert 'href="https://news.herald.test/view/1"' in message.html_body
    assert dict(message.headers)["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>"


def test_an_editor_template_error_keeps_its_line_number() -> None:
    from herald.core.errors import ValidationError

    with pytest.raises(ValidationError, match="line 3"):
        compile_issue("T", "<h1>x</h1>\n<p>y</p>\n<p>{% if %}</p>", "t")


def test_the_confirmation_email_is_in_the_layout() -> None:
    message = confirmation_email(
        NewSubscriber.parse(name="Ada", email="ada@example.org"),
        token="A" * 32,
        base_url="https://news.herald.test",
        sender="news@herald.test",
        ttl_hours=168,
        branding=Branding(name="Acme Weekly"),
    )
    html = message.html_body
    assert html.startswith("<!doctype html>")
    assert "Acme Weekly" in html
    assert "Please confirm your subscription to Acme Weekly" in html
    unstyled = [t for t, a in content_elements(html) if t != "br" and not a.get("style")]
    assert unstyled == []
    assert html.count("<a ") == 1  # no unsubscribe link: there is no subscription yet


def test_deep_nesting_is_refused_before_css_inline_sees_it() -> None:
    from herald.core.errors import ValidationError
    from herald.email.inline import MAX_DEPTH, check_nesting, inline_css

    deep = "<div>" * (MAX_DEPTH + 1) + "x" + "</div>" * (MAX_DEPTH + 1)
    with pytest.raises(ValidationError, match="levels deep"):
        compile_issue("t", deep, "t")
    with pytest.raises(ValidationError, match="levels deep"):
        inline_css(deep, "p { color: red }")
    check_nesting("<p>x</p><br><img src='a'>" * 5000)  # wide, not deep: fine
    check_nesting("<div>" * MAX_DEPTH + "x" + "</div>" * MAX_DEPTH)


def test_a_body_of_unclosed_tags_is_checked_in_one_pass() -> None:
    from herald.email.inline import check_nesting

    # 2 MiB of "<a " and no ">": the tag pattern's lazy scan to the next ">" from every "<a"
    # was quadratic (hours of a thread at every save, publish and worker compile).
    check_nesting("<p>x</p>" + "<a " * (2 * 1024 * 1024 // 3))
