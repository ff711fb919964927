"""Issue content rules and rendering: Markdown, derived bodies, sandboxed personalisation."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from herald.core.config import Settings
from herald.core.errors import Conflict, ValidationError
from herald.issues.domain import (
    IssueContent,
    IssueStatus,
    html_to_text,
    require_editable,
    text_to_html,
)
from herald.issues.rendering import check_renders, compile_issue, issue_email
from herald.subscriptions.unsubscribe import make_token, parse_token, unsubscribe_url

SETTINGS = Settings(secret_key="u" * 48, base_url="https://news.herald-mail.org")  # type: ignore[arg-type]


def test_markdown_becomes_html_and_readable_text() -> None:
    content = IssueContent.parse(
        title="  Weekly #3 ",
        markdown="# Hello\n\nSee [our site](https://example.org).\n\n- one\n- two",
    )
    assert content.title == "Weekly #3"
    assert "<h1>Hello</h1>" in content.html
    assert '<a href="https://example.org">our site</a>' in content.html
    assert "our site (https://example.org)" in content.text
    assert "- one" in content.text
    assert "#" not in content.text
    assert content.markdown is not None


def test_html_only_gets_a_text_body_and_text_only_gets_an_html_body() -> None:
    from_html = IssueContent.parse(
        title="t", html_content="<p>Hi <b>there</b></p><script>x()</script>"
    )
    assert from_html.text == "Hi there"
    from_text = IssueContent.parse(title="t", text_content="Line <1>\n\nLine 2")
    assert from_text.html == "<p>Line &lt;1&gt;</p>\n<p>Line 2</p>"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"title": ""}, "title must not be empty"),
        ({"title": "a\nb", "text_content": "x"}, "single line"),
        ({"title": "x" * 201, "text_content": "x"}, "too long"),
        ({"title": "ok"}, "needs content"),
        ({"title": 5, "text_content": "x"}, "must be a string"),
    ],
)
def test_bad_issue_content_is_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        IssueContent.parse(**fields)  # type: ignore[arg-type]


def test_only_drafts_and_scheduled_issues_can_change() -> None:
    require_editable(IssueStatus.DRAFT)
    require_editable(IssueStatus.SCHEDULED)
    for status in (IssueStatus.PUBLISHING, IssueStatus.SENT):
        with pytest.raises(Conflict):
            require_editable(status)


def test_personalisation_escapes_html_but_not_text() -> None:
    compiled = compile_issue("T", "<p>Hi {{ subscriber.name }}</p>", "Hi {{ subscriber.name }}")
    html, text = compiled.render(name="Tom & <Jerry>", email="t@example.com", unsubscribe_url="u")
    assert "Hi Tom &amp; &lt;Jerry&gt;" in html
    assert text.startswith("Hi Tom & <Jerry>")


def test_markdown_keeps_template_constructs_as_written() -> None:
    """Markdown escapes quotes and ``<`` in text; inside ``{{ }}`` and ``{% %}`` they are the
    template's, so ``default("friend")`` and ``a < b`` must reach Jinja as written."""
    content = IssueContent.parse(
        title="T",
        markdown=(
            'Hello {{ subscriber.name | default("friend", true) }},\n\n'
            "{% if subscriber.name | length < 3 %}Welcome *back*{% endif %} "
            "{# a note #}& more"
        ),
    )
    assert 'default("friend", true)' in content.html
    assert "length < 3 %}" in content.html
    assert "<em>back</em>" in content.html
    assert "&amp; more" in content.html
    assert 'default("friend", true)' in content.text
    compiled = compile_issue("T", content.html, content.text)
    html, text = compiled.render(name="", email="t@example.com", unsubscribe_url="u")
    assert "Hello friend," in html
    assert "Welcome <em" in html
    assert text.startswith("Hello friend,")


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ subscriber.__class__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{% for c in ().__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    ],
)
def test_an_editor_template_cannot_reach_python_internals(template: str) -> None:
    with pytest.raises(ValidationError):
        check_renders(compile_issue("T", template, "text"))


def test_template_syntax_errors_name_the_body_and_line() -> None:
    with pytest.raises(ValidationError, match="html_content: template error on line 2"):
        compile_issue("T", "ok\n{% if %}", "text")


def test_issue_email_headers_and_footer() -> None:
    subscriber = uuid.uuid4()
    url = unsubscribe_url(SETTINGS, subscriber)
    message = issue_email(
        compile_issue("Subject line", "<p>Body</p>", "Body"),
        sender="news@herald-mail.org",
        recipient="a@example.com",
        name="A",
        unsubscribe_url=url,
        base_url=SETTINGS.public_base_url,
    )
    headers = dict(message.headers)
    assert message.subject == "Subject line"
    assert headers["List-Unsubscribe"] == f"<{url}>"
    assert url.startswith("https://news.herald-mail.org/unsubscribe/one-click?token=")
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert headers["List-Id"] == "Herald newsletter <newsletter.news.herald-mail.org>"
    assert url in message.text_body
    assert "Unsubscribe</a>" in message.html_body


@given(st.uuids())
def test_unsubscribe_tokens_round_trip(subscriber: uuid.UUID) -> None:
    assert parse_token(SETTINGS, make_token(SETTINGS, subscriber)) == subscriber


def test_unsubscribe_tokens_cannot_be_forged_or_moved_between_subscribers() -> None:
    one, other = uuid.uuid4(), uuid.uuid4()
    token = make_token(SETTINGS, one)
    ident, _, mac = token.partition(".")
    other_ident = make_token(SETTINGS, other).partition(".")[0]
    assert parse_token(SETTINGS, f"{other_ident}.{mac}") is None
    assert parse_token(SETTINGS, f"{ident}.{mac[:-1]}") is None
    assert parse_token(SETTINGS, ident) is None
    foreign = Settings(secret_key="v" * 48)  # type: ignore[arg-type]
    assert parse_token(foreign, token) is None


def test_html_to_text_keeps_structure_and_links() -> None:
    text = html_to_text(
        "<h2>News</h2><p>Read <a href='https://x.org/a'>this</a>.</p><ul><li>a</li><li>b</li></ul>"
    )
    assert text.splitlines()[0] == "News"
    assert "Read this (https://x.org/a)." in text
    assert "- a" in text
    assert "- b" in text
    assert text_to_html("") == ""
