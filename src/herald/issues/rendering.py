"""Turning an issue into one subscriber's email.

The editor's bodies are Jinja2 templates rendered in a *sandboxed* environment:
``{{ subscriber.name }}``, ``{{ subscriber.email }}``, ``{{ subscriber.attributes.city }}``
(the reader's attributes: a missing one is empty, and ``| default("…")`` replaces it),
``{{ unsubscribe_url }}`` and ``{{ issue.title }}`` are available, Python internals are
not (attribute
access to ``__class__``, ``mro``, … raises a SecurityError). Templates are
compiled once per issue and rendered per recipient. The HTML body is placed into
the email layout (:mod:`herald.email.layout`), whose footer carries a visible
unsubscribe link, so no issue can go out without one; the layout's content CSS is
inlined into the body's template source once, at compile time
(:mod:`herald.email.inline`), so a recipient's render stays one Jinja pass and a
join. The text body gets a plain footer of its own. A recipient's ``view_url`` (their
signed web copy, :mod:`herald.issues.webcopy`) fills the layout's "View in browser" link
and a line of the text footer.

The sandbox bounds what a template can cost (:mod:`herald.issues.sandbox`), and
every render outside the hot path of a worker batch runs in a small thread pool
under a time limit (:func:`off_loop`), so no template freezes an event loop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit

from jinja2 import ChainableUndefined, TemplateError, TemplateSyntaxError, nodes

from herald.core import timebox
from herald.core.errors import ValidationError
from herald.email.inline import check_nesting, inline_template
from herald.email.layout import BoundLayout, Branding, Layout, compile_layout, default_layout
from herald.email.message import EmailMessage
from herald.engagement.links import CLICK_VARIABLE, pixel, rewrite
from herald.issues.preheaders import preheader
from herald.issues.sandbox import RENDER_SECONDS, render_limited, sandbox
from herald.subscriptions.unsubscribe import preferences_url_of

T = TypeVar("T")

UNSUBSCRIBE_POST = "List-Unsubscribe=One-Click"


class Attributes:
    """A reader's attributes as templates see them: ``subscriber.attributes.city`` (or
    ``["city"]``) is the value, a nested object is Attributes again, and a missing one is
    undefined in the lenient way: empty when printed, false in a test, replaced by
    ``default``, and any attribute of it is missing too. No methods a template could reach
    (a dict's ``items`` would shadow an attribute called so)."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = values

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    def __getitem__(self, name: object) -> Any:
        value = self._values.get(name) if isinstance(name, str) else None
        if value is None:
            return ChainableUndefined(name=str(name))
        return Attributes(value) if isinstance(value, dict) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __str__(self) -> str:
        return json.dumps(self._values, ensure_ascii=False)


NO_ATTRIBUTES = Attributes({})


def attributes(stored: str | None) -> Attributes:
    """A subscriber's stored attributes (JSON text of an object) for a template."""
    if not stored or stored == "{}":
        return NO_ATTRIBUTES
    values = json.loads(stored)
    return Attributes(values) if isinstance(values, dict) else NO_ATTRIBUTES


@dataclass(frozen=True)
class CompiledIssue:
    """An issue's templates, compiled once, rendered for each recipient.
    ``uses_attributes``: a body reads more of ``subscriber`` than its name and email, so
    its senders fetch the readers' attributes (only then)."""

    title: str
    html: Any  # jinja2.Template: the HTML body, the layout's content CSS inlined
    text: Any
    layout: Layout
    reason: str  # why the reader gets it, in the layout's footer
    preheader: str = ""  # the editor's inbox preview line; empty: the text body's first words
    uses_attributes: bool = False
    tracked_html: Any = None  # a tracked issue's: its links to the reader's click URLs
    _bound: dict[bool, BoundLayout] = field(default_factory=dict, compare=False, repr=False)

    def render(
        self,
        *,
        name: str,
        email: str,
        unsubscribe_url: str,
        view_url: str = "",
        attributes: Attributes = NO_ATTRIBUTES,
        track: tuple[str, str] | None = None,  # the reader's pixel URL and click prefix
    ) -> tuple[str, str]:
        context: dict[str, Any] = {
            "subscriber": {"name": name, "email": email, "attributes": attributes},
            "unsubscribe_url": unsubscribe_url,
            "issue": {"title": self.title},
        }
        text = _render(self.text, context).rstrip()
        preferences_url = preferences_url_of(unsubscribe_url)  # no second HMAC
        if track is not None and self.tracked_html is not None:
            context[CLICK_VARIABLE] = track[1]  # URL-safe: escaping leaves it as it is
            content = _render(self.tracked_html, context) + pixel(track[0])
        else:
            content = _render(self.html, context)
        html = self._layout(bool(view_url)).render(
            content=content,
            preheader="" if self.preheader else preheader(text),
            unsubscribe_url=unsubscribe_url,
            view_url=view_url,
            preferences_url=preferences_url,
        )
        return html, text + _text_footer(unsubscribe_url, view_url, preferences_url)

    def content(
        self, *, name: str, unsubscribe_url: str, attributes: Attributes = NO_ATTRIBUTES
    ) -> str:
        """The HTML body alone, the layout's content CSS inlined, without the layout around
        it (no footer, no links of a reader's own): the public archive's copy, rendered for
        an anonymous reader (an empty address)."""
        context = {
            "subscriber": {"name": name, "email": "", "attributes": attributes},
            "unsubscribe_url": unsubscribe_url,
            "issue": {"title": self.title},
        }
        return _render(self.html, context)

    def _layout(self, view: bool) -> BoundLayout:
        """The layout with the title and footer filled in, once per issue."""
        bound = self._bound.get(view)
        if bound is None:
            present = {"content", "unsubscribe_url", "preferences_url"}
            if view:
                present.add("view_url")
            constants = {"title": self.title, "reason": self.reason}
            if self.preheader:  # the same in every copy: bound once
                constants["preheader"] = self.preheader
            else:
                present.add("preheader")
            bound = self.layout.bind(frozenset(present), **constants)
            self._bound[view] = bound
        return bound


def _render(template: Any, variables: dict[str, Any]) -> str:
    flat = template.__dict__.get("_herald_globals")
    if flat is None:  # once per template, not per recipient (BENCHMARKS.md P4)
        flat = template._herald_globals = dict(template.globals)
    return render_limited(template, variables, flat)


def compile_issue(
    title: str,
    html: str,
    text: str,
    branding: Branding | None = None,
    *,
    preheader: str = "",
    layout_source: str | None = None,
    tracked_links: tuple[str, ...] | None = None,  # a tracked issue's stored links
    base_url: str = "",
) -> CompiledIssue:
    """Compile both bodies (the HTML one with the layout's CSS inlined) into a layout
    (``layout_source`` MJML, the built-in one by default); a template error is a 400
    naming the body and line. ``preheader`` is the inbox preview line; when empty, each
    copy's comes from the first words of its text body. ``tracked_links``: a tracked issue's
    stored links, its body's links to them rewritten here (:mod:`herald.engagement.links`)."""
    branding = branding or Branding()
    layout = (
        default_layout(branding)
        if layout_source is None
        else compile_layout(layout_source, branding)
    )
    check_nesting(html)  # before css-inline, which crashes on very deep nesting
    return CompiledIssue(
        title=title,
        html=_compile_html(html, layout.content_css),
        tracked_html=None
        if tracked_links is None
        else _compile_html(rewrite(html, tracked_links, base_url), layout.content_css),
        text=_compile(text, autoescape=False, field="text_content"),
        layout=layout,
        reason=f"You receive this because you subscribed to {branding.name}.",
        preheader=" ".join(preheader.split()),
        uses_attributes=reads_attributes(html, autoescape=True)
        or reads_attributes(text, autoescape=False),
    )


_PLAIN_FIELDS = frozenset({"name", "email"})


def reads_attributes(source: str, *, autoescape: bool) -> bool:
    """Whether a (compilable) template may read a reader's attributes: any use of
    ``subscriber`` other than ``subscriber.name`` / ``.email`` (``subscriber.attributes``,
    ``subscriber["attributes"]``, ``{% set s = subscriber %}``, ``{{ subscriber }}``)."""
    if "subscriber" not in source:
        return False
    tree = sandbox(autoescape).parse(source)
    plain: set[int] = set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        target = getattr(node, "node", None)
        if not (isinstance(target, nodes.Name) and target.name == "subscriber"):
            continue
        key = getattr(node, "attr", None) or getattr(getattr(node, "arg", None), "value", None)
        if key in _PLAIN_FIELDS:
            plain.add(id(target))
    return any(n.name == "subscriber" and id(n) not in plain for n in tree.find_all(nodes.Name))


def _compile_html(html: str, css: str) -> Any:
    try:
        return _compile(inline_template(html, css), autoescape=True, field="html_content")
    except ValidationError:  # the error as the editor wrote it, with their line numbers
        return _compile(html, autoescape=True, field="html_content")


def _compile(source: str, *, autoescape: bool, field: str) -> Any:
    try:
        return sandbox(autoescape).from_string(source)
    except TemplateSyntaxError as exc:
        raise ValidationError(
            f"{field}: template error on line {exc.lineno}: {exc.message}", field=field
        ) from None
    except RecursionError:
        raise ValidationError(f"{field}: the template is nested too deeply", field=field) from None


def check_renders(compiled: CompiledIssue) -> None:
    """Render once with sample values, so an editor's mistake shows at save time: any
    error, a limit of the sandbox or a render slower than the time limit is a 400."""
    render_or_refuse(
        lambda: compiled.render(
            name="Sample Subscriber",
            email="sample@example.com",
            unsubscribe_url="https://example.com/unsubscribe",
        )
    )


def render_or_refuse(render: Callable[[], T]) -> T:
    """``render()`` under the time limit; whatever goes wrong is a 400 naming it."""
    try:
        return timebox.run_limited(render, RENDER_SECONDS)
    except ValidationError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever a template raises is the editor's to fix
        raise ValidationError(f"the issue cannot be rendered: {describe_error(exc)}") from None


def describe_error(exc: BaseException) -> str:
    """What went wrong in a template, for an editor: the error and the template line."""
    if isinstance(exc, timebox.TimeLimitExceeded):
        return f"rendering took longer than {RENDER_SECONDS:g} seconds"
    if isinstance(exc, TemplateError):
        text = exc.message or type(exc).__name__
    else:
        text = f"{type(exc).__name__}: {exc}"
    line = _template_line(exc.__traceback__)
    return f"{text} (line {line})" if line else text


def _template_line(tb: TracebackType | None) -> int | None:
    line = None
    while tb is not None:
        template = tb.tb_frame.f_globals.get("__jinja_template__")
        if template is not None:
            line = template.get_corresponding_lineno(tb.tb_lineno)
        tb = tb.tb_next
    return line


_pool: list[ThreadPoolExecutor] = []


async def off_loop(func: Callable[[], T]) -> T:
    """Run CPU-bound template work (compiling, sample renders, previews) in a small
    thread pool, so the event loop keeps serving meanwhile. Renders inside ``func`` carry
    their own time limit (:func:`check_renders`, :func:`render_sample`); compiling is
    bounded by the body's size."""
    if not _pool:
        _pool.append(ThreadPoolExecutor(max_workers=2, thread_name_prefix="herald-render"))
    return await asyncio.get_running_loop().run_in_executor(_pool[0], func)


def _text_footer(unsubscribe_url: str, view_url: str = "", preferences_url: str = "") -> str:
    view = f"View in your browser: {view_url}\n" if view_url else ""
    if preferences_url:
        view += f"Manage your preferences: {preferences_url}\n"
    return (
        f"\n\n--\n{view}You receive this because you subscribed. Unsubscribe: {unsubscribe_url}\n"
    )


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
    view_url: str = "",
    attributes: Attributes = NO_ATTRIBUTES,
    track: tuple[str, str] | None = None,
) -> EmailMessage:
    html, text = compiled.render(
        name=name,
        email=recipient,
        unsubscribe_url=unsubscribe_url,
        view_url=view_url,
        attributes=attributes,
        track=track,
    )
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
