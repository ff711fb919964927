"""Markdown is converted under a time limit: a pathological body is a 400, not a render
thread held for tens of seconds; and a time limit inside another keeps the outer one."""

from __future__ import annotations

import time

import pytest

from herald.core import timebox
from herald.core.errors import ValidationError
from herald.issues import markdown
from herald.issues.domain import IssueContent

PATHOLOGICAL = "[" * 400_000  # ~4 s of markdown-it here; two million: ~20 s


def test_a_pathological_body_is_refused_at_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(markdown, "MARKDOWN_SECONDS", 0.2)
    started = time.monotonic()
    with pytest.raises(ValidationError, match=r"took longer than 0\.2 seconds") as refused:
        IssueContent.parse(title="Weekly", markdown=PATHOLOGICAL)
    assert refused.value.field == "markdown"
    assert time.monotonic() - started < 2.0
    with pytest.raises(ValidationError):
        markdown.markdown_to_html(PATHOLOGICAL)


def test_an_ordinary_body_converts_under_the_limit() -> None:
    html, text = markdown.markdown_bodies("# Hello {{ subscriber.name }}\n\n- one\n- two\n")
    assert "<h1>Hello {{ subscriber.name }}</h1>" in html
    assert "- one\n- two" in text


def test_a_limit_inside_a_limit_keeps_the_outer_deadline() -> None:
    def forever() -> None:
        while True:
            pass

    started = time.monotonic()
    with pytest.raises(timebox.TimeLimitExceeded):
        timebox.run_limited(lambda: timebox.run_limited(forever, 30.0), 0.1)
    assert time.monotonic() - started < 5.0
    # The thread is left without a limit afterwards: a later call gets its own.
    assert timebox.run_limited(lambda: 42, 1.0) == 42
