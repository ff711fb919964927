"""A welcome email's body at the editor's limits (20,000 characters): deeply nested
templates, Markdown and HTML, and templates that would render forever, are each a 400
naming the problem or a bounded email, never a crash or a hang."""

from __future__ import annotations

import pytest

from herald.core.errors import ValidationError
from herald.design.domain import Design
from herald.email.layout import Branding
from herald.welcomes.domain import MAX_BODY, WelcomeDraft
from herald.welcomes.email import compile_welcome, sample

DESIGN = Design(version=1, branding=Branding())
UNSUBSCRIBE = "https://news.example.com/unsubscribe/one-click?token=preview"


def preview(body: str) -> str:
    draft = WelcomeDraft.parse(enabled="on", subject="Hi", body=body[:MAX_BODY])
    compiled = compile_welcome(draft.subject, draft.body, "News", DESIGN)
    return sample(compiled, unsubscribe_url=UNSUBSCRIBE).html


@pytest.mark.parametrize(
    ("body", "refusal"),
    [
        ("{% if 1 %}" * 2_000 + "x" + "{% endif %}" * 2_000, "template error"),
        ("{{ " + "(" * 9_000 + "1" + ")" * 9_000 + " }}", "template error"),
        ("<div>" * 3_999, "more than 1,000 levels deep"),
        (
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            "cannot be rendered",
        ),
    ],
    ids=["nested-ifs", "nested-parentheses", "nested-html", "endless-loop"],
)
def test_a_hostile_body_is_refused_naming_why(body: str, refusal: str) -> None:
    with pytest.raises(ValidationError) as refused:
        preview(body)
    assert refused.value.field == "body"
    assert refusal in refused.value.message


@pytest.mark.parametrize(
    "body",
    [
        "> " * 9_999 + "x",
        "".join("  " * depth + "- x\n" for depth in range(140)),
        "[" * MAX_BODY,
        "*a " * 6_000,
    ],
    ids=["nested-quotes", "nested-lists", "brackets", "emphasis"],
)
def test_deep_markdown_at_the_size_limit_makes_a_bounded_email(body: str) -> None:
    html = preview(body)
    assert "one-click?token=preview" in html  # the whole email, footer included
    assert len(html) < 20 * MAX_BODY
