"""Turning an issue into one subscriber's email.

The editor's bodies are Jinja2 templates rendered in a *sandboxed* environment:
``{{ subscriber.name }}``, ``{{ subscriber.email }}``, ``{{ unsubscribe_url }}``
and ``{{ issue.title }}`` are available, Python internals are not (attribute
access to ``__class__``, ``mro``, … raises a SecurityError). Templates are
compiled once per issue and rendered per recipient. Herald appends its own
footer with a visible unsubscribe link, so no issue can go out without one.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from html import escape
from typing import Any
from urllib.parse import urlsplit

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markdown_it import MarkdownIt

from herald.core.errors import ValidationError
from herald.email.message import EmailMessage

UNSUBSCRIBE_POST = "List-Unsubscribe=One-Click"


@cache
def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": True, "linkify": False, "typographer": False}).enable(
        "table"
    )


def markdown_to_html(source: str) -> str:
    rendered: str = _markdown().render(source)
    return rendered


@cache
def _sandbox(autoescape: bool) -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(autoescape=autoescape, undefined=StrictUndefined)


@dataclass(frozen=True)
class CompiledIssue:
    """An issue's templates, compiled once, rendered for each recipient."""

    title: str
    html: Any  # jinja2.Template
    text: Any

    def render(self, *, name: str, email: str, unsubscribe_url: str) -> tuple[str, str]:
        context = {
            "subscriber": {"name": name, "email": email},
            "unsubscribe_url": unsubscribe_url,
            "issue": {"title": self.title},
        }
        html = _render(self.html, context) + _html_footer(unsubscribe_url)
        text = _render(self.text, context).rstrip() + _text_footer(unsubscribe_url)
        return html, text


def _render(template: Any, variables: dict[str, Any]) -> str:
    """``template.render(variables)`` without copying the template's globals each time.

    ``Template.render`` builds its context with ``dict(template.globals, **variables)``,
    and ``template.globals`` is a ChainMap: iterating it was ~60 % of rendering one
    recipient's email (cProfile of ``issue_email``; BENCHMARKS.md P4). The globals are
    flattened once per template here; the context is otherwise the one ``render`` makes.
    """
    flat = template.__dict__.get("_herald_globals")
    if flat is None:
        flat = template._herald_globals = dict(template.globals)
    environment = template.environment
    context = environment.context_class(
        environment, {**flat, **variables}, template.name, template.blocks
    )
    # Errors propagate as raised (``render`` would only rewrite their traceback).
    rendered: str = environment.concat(template.root_render_func(context))
    return rendered


def compile_issue(title: str, html: str, text: str) -> CompiledIssue:
    """Compile both bodies; a template error is a 400 naming the body and line."""
    return CompiledIssue(
        title=title,
        html=_compile(html, autoescape=True, field="html_content"),
        text=_compile(text, autoescape=False, field="text_content"),
    )


def _compile(source: str, *, autoescape: bool, field: str) -> Any:
    try:
        return _sandbox(autoescape).from_string(source)
    except TemplateSyntaxError as exc:
        raise ValidationError(
            f"{field}: template error on line {exc.lineno}: {exc.message}", field=field
        ) from None


def check_renders(compiled: CompiledIssue) -> None:
    """Render once with sample values, so an editor's mistake shows at save time."""
    try:
        compiled.render(
            name="Sample Subscriber",
            email="sample@example.com",
            unsubscribe_url="https://example.com/unsubscribe",
        )
    except TemplateError as exc:
        raise ValidationError(f"the issue cannot be rendered: {exc}") from None


def _html_footer(unsubscribe_url: str) -> str:
    return (
        '\n<hr><p style="font-size:12px;color:#777">You receive this because you subscribed. '
        f'<a href="{escape(unsubscribe_url)}">Unsubscribe</a></p>\n'
    )


def _text_footer(unsubscribe_url: str) -> str:
    return f"\n\n--\nYou receive this because you subscribed. Unsubscribe: {unsubscribe_url}\n"


@cache  # one base URL per process: computed once, not per recipient
def list_id(base_url: str) -> str:
    host = urlsplit(base_url).hostname or "localhost"
    return f"Herald newsletter <newsletter.{host}>"


def issue_email(
    compiled: CompiledIssue,
    *,
    sender: str,
    recipient: str,
    name: str,
    unsubscribe_url: str,
    base_url: str,
) -> EmailMessage:
    html, text = compiled.render(name=name, email=recipient, unsubscribe_url=unsubscribe_url)
    return EmailMessage(
        sender=sender,
        recipient=recipient,
        subject=compiled.title,
        html_body=html,
        text_body=text,
        headers=(
            ("List-Unsubscribe", f"<{unsubscribe_url}>"),
            ("List-Unsubscribe-Post", UNSUBSCRIBE_POST),
            ("List-Id", list_id(base_url)),
        ),
    )
