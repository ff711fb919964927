"""An issue's own preheader (issue 14, item 1) and the editor's preview documents (item 5):
the preheader's rules, the dark and light previews of the layout, the text part's frame."""

from __future__ import annotations

import re

import pytest

from herald.admin.issue_forms import IssueForm
from herald.core.errors import ValidationError
from herald.issues.domain import MAX_PREHEADER_LENGTH, IssueContent
from herald.issues.previews import IssuePreview, in_scheme, parse_part, parse_scheme
from herald.issues.rendering import compile_issue

UNSUBSCRIBE = "https://news.herald.test/unsubscribe/one-click?token=preview"


def hidden_preheader(html: str) -> str:
    hidden = html[html.index("<div style='display:none;") :]
    return hidden[hidden.index(">") + 1 : hidden.index("&zwnj;")]


def test_the_preheader_is_one_line_of_at_most_150_characters() -> None:
    content = IssueContent.parse(
        title="T", markdown="Body", preheader="  Five links\n\tworth  your time  "
    )
    assert content.preheader == "Five links worth your time"
    assert IssueContent.parse(title="T", markdown="Body").preheader == ""
    html_only = IssueContent.parse(title="T", html_content="<p>x</p>", preheader="Pre")
    assert html_only.preheader == "Pre"
    longest = "x" * MAX_PREHEADER_LENGTH
    assert IssueContent.parse(title="T", markdown="B", preheader=longest).preheader == longest
    with pytest.raises(ValidationError) as refused:
        IssueContent.parse(title="T", markdown="B", preheader=longest + "y")
    assert refused.value.field == "preheader"
    assert "preheader is too long: at most 150 characters (151 given)" in refused.value.message
    with pytest.raises(ValidationError) as wrong_type:
        IssueContent.parse(title="T", markdown="B", preheader=["a"])
    assert wrong_type.value.field == "preheader"


def test_the_editor_form_carries_the_preheader_and_works_without_it() -> None:
    form = IssueForm.from_form({"title": "T", "format": "html", "text_content": "Hi"})
    assert form.preheader == ""
    assert form.content().preheader == ""
    with_line = IssueForm.from_form({"title": "T", "markdown": "Hi", "preheader": " Inbox  line"})
    assert with_line.content().preheader == "Inbox line"
    assert (with_line.part, with_line.width, with_line.scheme) == ("html", "desktop", "light")
    toggled = IssueForm.from_form({"part": "text", "width": "phone", "scheme": "dark"})
    assert (toggled.part, toggled.width, toggled.scheme) == ("text", "phone", "dark")
    odd = IssueForm.from_form({"part": "pdf", "width": "watch", "scheme": "sepia"})
    assert (odd.part, odd.width, odd.scheme) == ("html", "desktop", "light")


def test_a_set_preheader_is_the_hidden_line_of_every_copy() -> None:
    compiled = compile_issue("T", "<p>Hi {{ subscriber.name }}</p>", "Hi", preheader="Own line")
    for name in ("Ada", "Grace"):
        html, _ = compiled.render(name=name, email="a@example.org", unsubscribe_url=UNSUBSCRIBE)
        assert hidden_preheader(html) == "Own line"


def email_document() -> str:
    compiled = compile_issue("T", "<p>Hi</p>", "Hi")
    html, _ = compiled.render(name="A", email="a@example.org", unsubscribe_url=UNSUBSCRIBE)
    return html


def test_dark_applies_the_layout_s_dark_rules_always_and_light_never() -> None:
    html = email_document()
    assert re.search(r"@media\s*\(\s*prefers-color-scheme\s*:\s*dark\s*\)", html)
    dark = in_scheme(html, "dark")
    assert "prefers-color-scheme" not in dark
    assert "@media all" in dark
    light = in_scheme(html, "light")
    assert "prefers-color-scheme" not in light
    assert "@media not all" in light
    assert in_scheme(html, "") == html
    # Only the query changes: the dark rules themselves are the layout's.
    assert dark.replace("@media all", "") == light.replace("@media not all", "")


def test_the_preview_document_shows_the_chosen_part_in_the_chosen_scheme() -> None:
    preview = IssuePreview("T <x>", email_document(), "Hi <there>\n\n--\nfooter", "Hi")
    assert "<title>Preview: T</title>" in preview.document()
    assert "@media all" in preview.document("dark")
    text = preview.document("dark", "text")
    assert "<title>Preview (text): T &lt;x&gt;</title>" in text
    assert '<pre id="text-part">Hi &lt;there&gt;\n\n--\nfooter</pre>' in text
    assert "background:#111318" in text
    assert "background:#ffffff" in preview.document("", "text")
    assert preview.as_json()["preheader"] == "Hi"


@pytest.mark.parametrize(
    ("parse", "value", "field"),
    [(parse_scheme, "sepia", "scheme"), (parse_part, "pdf", "part")],
)
def test_an_unknown_toggle_value_is_a_400_naming_it(parse: object, value: str, field: str) -> None:
    assert callable(parse)
    with pytest.raises(ValidationError) as refused:
        parse(value)
    assert refused.value.field == field
    assert parse_scheme(None) == ""
    assert parse_scheme("dark") == "dark"
    assert parse_part(None) == "html"
    assert parse_part("text") == "text"
