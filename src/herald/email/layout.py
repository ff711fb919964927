"""Email layouts: every email is its content placed into a responsive layout.

A layout is MJML with a small fixed set of ``{{ token }}`` placeholders and sections:
``{{#name}}…{{/name}}`` keeps its inside only when ``name`` has a value, ``{{^name}}…{{/name}}``
only when it has none. Two kinds of tokens:

* **branding** (:data:`BRANDING_TOKENS`: the newsletter's name, logo, accent colour, postal
  address) is substituted into the MJML *before* it is compiled, so MJML sees real colours;
* **per email** (:data:`EMAIL_TOKENS`: the content, preheader, title, why the reader gets it,
  the unsubscribe, preferences and "view in browser" links) is left in the compiled HTML.

A layout is compiled once per source and branding (:func:`compile_layout`, cached): MJML →
HTML, then split into literal segments and per-email tokens, so rendering an email is a join
of those segments with the escaped token values (``content`` is HTML and goes in as it is).

The layout's ``<mj-style inline="inline">`` blocks are the content area's typography: they are
taken out of the MJML and inlined into each email's content (:mod:`herald.email.inline`), once
per issue, because mail clients drop or ignore ``<style>`` (Gmail on some accounts, Outlook).

A layout that fails to compile, or lacks ``{{ content }}`` or ``{{ unsubscribe_url }}``, is a
:class:`ValidationError` naming the problem.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import parseaddr
from functools import cache, lru_cache
from html import escape
from importlib.resources import files
from typing import TYPE_CHECKING, Union

import mjml

from herald.core.errors import ValidationError
from herald.email.message import Pieced

if TYPE_CHECKING:
    from herald.core.config import Settings

DEFAULT_NAME = "Herald newsletter"
DEFAULT_ACCENT = "#3451c7"
BRANDING_TOKENS = frozenset(
    {"newsletter_name", "logo_url", "accent", "accent_dark", "footer_address"}
)
EMAIL_TOKENS = frozenset(
    {
        "content",
        "preheader",
        "title",
        "reason",
        "unsubscribe_url",
        "view_url",
        "preferences_url",
    }
)
REQUIRED_TOKENS = ("content", "unsubscribe_url")
MAX_LAYOUT_LENGTH = 200_000
# After the preheader: invisible characters that keep a mail client's preview line from
# running on into the body's first words.
PREHEADER_FILL = "&zwnj;&nbsp;" * 30

_TOKEN = re.compile(r"\{\{\s*([#^/]?)\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_INLINE_STYLE = re.compile(r"<mj-style\s+inline\s*=\s*[\"']inline[\"']\s*>(.*?)</mj-style>", re.S)
_XHTML_NAMESPACE = ' xmlns="http://www.w3.org/1999/xhtml"'
_PREHEADER = re.compile(r"\{\{\s*preheader\s*\}\}")
_STYLE_BLOCK = re.compile(r"(<style[^>]*>)(.*?)(</style>)", re.S)
_CSS_SPACE = re.compile(r"\s*([{};,>])\s*|(:)\s+|\s+")
# An attribute whose value holds no quote: written with single quotes, which JSON (the
# Postmark API) carries as they are, where each double quote costs an escape both ways
# (~150 in the default layout). Links (href, src) keep their double quotes: readers'
# tools and tests look for href="…".
_DOUBLE_QUOTED = re.compile(r"(\s(?!href=|src=)[A-Za-z_:][-A-Za-z0-9_:.]*)=\"([^\"'<>]*)\"")


@dataclass(frozen=True)
class Branding:
    name: str = DEFAULT_NAME
    accent: str = DEFAULT_ACCENT
    logo_url: str = ""
    footer_address: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> Branding:
        """The configured branding; the name defaults to the sender's display name."""
        newsletter = settings.newsletter
        name = newsletter.name.strip() or parseaddr(settings.sender)[0].strip() or DEFAULT_NAME
        return cls(
            name=name,
            accent=newsletter.accent,
            logo_url=newsletter.logo_url,
            footer_address=newsletter.footer_address.strip(),
        )

    def values(self) -> dict[str, str]:
        """The branding tokens as they go into the MJML: escaped, braces neutralised."""
        raw = {
            "newsletter_name": self.name,
            "logo_url": self.logo_url,
            "accent": self.accent,
            "accent_dark": lighten(self.accent, 0.45),
            "footer_address": self.footer_address,
        }
        return {k: escape(v).replace("{", "&#123;").replace("}", "&#125;") for k, v in raw.items()}


def lighten(colour: str, amount: float) -> str:
    """``#rrggbb`` mixed with white: the accent as it reads on a dark background."""
    if not re.fullmatch(r"#[0-9a-fA-F]{6}", colour):
        return colour
    channels = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return "#" + "".join(f"{round(c + (255 - c) * amount):02x}" for c in channels)


@dataclass(frozen=True)
class _Section:
    name: str
    inverted: bool
    parts: tuple[_Part, ...]


@dataclass(frozen=True)
class _Token:
    name: str


_Part = Union[str, _Token, _Section]  # noqa: UP007 - a runtime alias


@dataclass(frozen=True)
class Layout:
    """A compiled layout: segments and tokens, and the CSS for the content area."""

    parts: tuple[_Part, ...]
    content_css: str
    tokens: frozenset[str]

    def render(self, *, content: str, preheader: str = "", **values: str) -> str:
        """The email: ``content`` as it is (HTML), every other value escaped; a section
        whose token has no value is left out."""
        filled = _escaped(content, preheader, values)
        out: list[str] = []
        _emit(self.parts, filled, out)
        return "".join(out)

    def bind(self, present: frozenset[str], **constants: str) -> BoundLayout:
        """The layout with the values that are the same in every copy of an email filled
        in (``constants``) and its sections decided: ``present`` names the tokens each
        render will give a value; any other token stays empty."""
        filled = _escaped(constants.pop("content", ""), constants.pop("preheader", ""), constants)
        literals: list[str] = [""]
        names: list[str] = []

        def walk(parts: tuple[_Part, ...]) -> None:
            for part in parts:
                if isinstance(part, str):
                    literals[-1] += part
                elif isinstance(part, _Token):
                    if part.name in present:
                        names.append(part.name)
                        literals.append("")
                    else:
                        literals[-1] += filled.get(part.name, "")
                elif ((part.name in present) or (part.name in filled)) != part.inverted:
                    walk(part.parts)

        walk(self.parts)
        return BoundLayout(tuple(literals), tuple(names))


@dataclass(frozen=True)
class BoundLayout:
    """A layout with an email's constant values in it: literal segments around the tokens
    that differ per reader, so rendering a copy is one join."""

    literals: tuple[str, ...]
    names: tuple[str, ...]

    def render(self, *, content: str, preheader: str = "", **values: str) -> Pieced:
        filled = _escaped(content, preheader, values)
        literals = self.literals
        out = [literals[0]]
        for position, name in enumerate(self.names, 1):
            out.append(filled.get(name, ""))
            out.append(literals[position])
        return Pieced.of(out)


def _escaped(content: str, preheader: str, values: dict[str, str]) -> dict[str, str]:
    filled = {name: escape(value) for name, value in values.items() if value}
    if content:
        filled["content"] = content
    if preheader:
        filled["preheader"] = escape(preheader)
    return filled


def _emit(parts: tuple[_Part, ...], values: dict[str, str], out: list[str]) -> None:
    for part in parts:
        if isinstance(part, str):
            out.append(part)
        elif isinstance(part, _Token):
            out.append(values.get(part.name, ""))
        elif (part.name in values) != part.inverted:
            _emit(part.parts, values, out)


def _parse(source: str) -> tuple[_Part, ...]:
    """Text, tokens and sections; an unclosed or stray section end is a ValidationError."""
    stack: list[tuple[str, bool, list[_Part]]] = [("", False, [])]
    position = 0
    for match in _TOKEN.finditer(source):
        if match.start() > position:
            stack[-1][2].append(source[position : match.start()])
        position = match.end()
        kind, name = match.groups()
        if name not in BRANDING_TOKENS | EMAIL_TOKENS:
            raise ValidationError(f"the layout uses an unknown placeholder {{{{ {name} }}}}")
        if kind in ("#", "^"):
            stack.append((name, kind == "^", []))
        elif kind == "/":
            if len(stack) == 1 or stack[-1][0] != name:
                raise ValidationError(f"the layout closes {{{{/{name}}}}} without opening it")
            open_name, inverted, parts = stack.pop()
            stack[-1][2].append(_Section(open_name, inverted, tuple(parts)))
        else:
            stack[-1][2].append(_Token(name))
    if len(stack) > 1:
        raise ValidationError(f"the layout never closes {{{{#{stack[-1][0]}}}}}")
    if position < len(source):
        stack[0][2].append(source[position:])
    return tuple(stack[0][2])


def _fill_branding(parts: tuple[_Part, ...], values: dict[str, str]) -> str:
    """The MJML with branding substituted; per-email tokens and sections written back."""
    out: list[str] = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
        elif isinstance(part, _Token):
            out.append(
                values[part.name] if part.name in BRANDING_TOKENS else f"{{{{ {part.name} }}}}"
            )
        elif part.name in BRANDING_TOKENS:
            if bool(values[part.name]) != part.inverted:
                out.append(_fill_branding(part.parts, values))
        else:
            mark = "^" if part.inverted else "#"
            inside = _fill_branding(part.parts, values)
            out.append(f"{{{{{mark}{part.name}}}}}{inside}{{{{/{part.name}}}}}")
    return "".join(out)


def _names(parts: tuple[_Part, ...]) -> set[str]:
    names: set[str] = set()
    for part in parts:
        if isinstance(part, _Token):
            names.add(part.name)
        elif isinstance(part, _Section):
            names |= {part.name} | _names(part.parts)
    return names


@lru_cache(maxsize=16)
def compile_layout(source: str, branding: Branding = Branding()) -> Layout:
    """Compile a layout for a branding (cached); a broken layout is a ValidationError."""
    if len(source) > MAX_LAYOUT_LENGTH:
        raise ValidationError(f"the layout is longer than {MAX_LAYOUT_LENGTH} characters")
    values = branding.values()
    css = "\n".join(_INLINE_STYLE.findall(source))
    mjml_source = _fill_branding(_parse(_INLINE_STYLE.sub("", source)), values)
    content_css = _fill_branding(_parse(css), values)
    try:
        html = mjml.mjml2html(mjml_source, disable_comments=True, fonts={})
    except Exception as exc:  # noqa: BLE001 - the compiler's message is the editor's to read
        raise ValidationError(f"the layout does not compile: {exc}") from None
    # No http link but the ones the email means: the XHTML namespace is noise in HTML.
    html = _minify_styles(html.replace(_XHTML_NAMESPACE, "", 1))
    html = _DOUBLE_QUOTED.sub(r"\1='\2'", html)
    html = _PREHEADER.sub(lambda m: m.group() + PREHEADER_FILL, html)  # a literal, once
    parts = _parse(html)
    tokens = frozenset(_names(parts))
    for required in REQUIRED_TOKENS:
        if required not in tokens:
            raise ValidationError(f"the layout has no {{{{ {required} }}}} placeholder")
    if tokens & BRANDING_TOKENS:  # pragma: no cover - substituted above
        raise ValidationError("the layout keeps a branding placeholder")
    layout = Layout(parts, content_css, tokens)
    _check_required_output(layout)
    return layout


_PROBE_CONTENT = "<p>herald-layout-probe</p>"
_PROBE_URL = "https://unsubscribe.invalid/probe"


def _check_required_output(layout: Layout) -> None:
    """With only what every email has (content, an unsubscribe link) the layout must show
    both, the link as a link: a placeholder used only as a section name, inside another
    token's section or in an inverted one does not count."""
    html = layout.render(content=_PROBE_CONTENT, unsubscribe_url=_PROBE_URL)
    if _PROBE_CONTENT not in html:
        raise ValidationError("the layout does not show {{ content }} in every email")
    if f'href="{_PROBE_URL}"' not in html:
        raise ValidationError(
            'the layout has no unsubscribe link in every email: keep <a href="{{ '
            'unsubscribe_url }}"> outside any {{#…}} section but its own'
        )


def _minify_styles(html: str) -> str:
    """The compiled layout's ``<style>`` blocks without their indentation and spaces."""

    def squeeze(css: str) -> str:
        return _CSS_SPACE.sub(lambda m: m.group(1) or m.group(2) or " ", css).strip()

    return _STYLE_BLOCK.sub(lambda m: m.group(1) + squeeze(m.group(2)) + m.group(3), html)


@cache
def default_source() -> str:
    return files("herald.email").joinpath("layouts/default.mjml").read_text(encoding="utf-8")


def default_layout(branding: Branding = Branding()) -> Layout:
    return compile_layout(default_source(), branding)
