"""A layout's content CSS inlined into an email's content, Jinja syntax intact.

An issue's HTML body is a Jinja template, and it is inlined once per issue, before it is
compiled, so that rendering it for each reader stays a plain Jinja pass. An HTML parser
would mangle Jinja syntax (``{% if a < b %}`` would be escaped, ``{% for %}`` between table
rows moved out of the table, an ``{% if %}`` inside a tag taken for an attribute), so every
``{{ … }}``, ``{% … %}`` and ``{# … #}`` is swapped for a placeholder first — an HTML comment
between elements and in text (a parser keeps comments where they are, also inside tables), a
plain word inside a tag — and swapped back afterwards.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator

import css_inline

from herald.core.errors import ValidationError

_OPENER = re.compile(r"\{[{%#]")
_CLOSER = {"{": "}}", "%": "%}", "#": "#}"}
_TAG_OPEN = re.compile(r"<[A-Za-z/!]")
# css-inline (Rust) recurses per element: 10,000 nested <div>s (50 KB) crashed the whole
# process (SIGSEGV). No email needs more than a few dozen levels.
MAX_DEPTH = 1000
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)[^>]*?(/?)>")
_VOID = frozenset(
    [
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
    ]
)


def check_nesting(html: str, field: str = "html_content") -> None:
    """A ValidationError when ``html`` nests elements deeper than :data:`MAX_DEPTH`
    (counted leniently: unclosed elements count as open)."""
    if html.count("<") < MAX_DEPTH:
        return
    depth = 0
    # Up to the last ">": a "<" after it starts no tag, and the lazy scan to a ">" that is not
    # there, from every such "<", was quadratic (2 MiB of "<a ": hours).
    for match in _TAG.finditer(html, 0, html.rfind(">") + 1):
        closing, name, self_closing = match.groups()
        if closing:
            depth = max(0, depth - 1)
        elif not self_closing and name.lower() not in _VOID:
            depth += 1
            if depth > MAX_DEPTH:
                raise ValidationError(
                    f"{field}: the HTML nests elements more than {MAX_DEPTH:,} levels deep",
                    field=field,
                )


def inline_css(html: str, css: str) -> str:
    """``css`` inlined into the fragment ``html`` (its own ``<style>`` blocks too; they stay
    when they hold media queries, which cannot be inlined)."""
    if not css.strip() and "<style" not in html.lower():
        return html
    check_nesting(html)
    keep = "@media" in html
    return css_inline.inline_fragment(html, css, keep_style_tags=keep, minify_css=True)


def inline_template(source: str, css: str) -> str:
    """``css`` inlined into a Jinja template's HTML source, every Jinja construct unchanged."""
    constructs = list(jinja_constructs(source))
    if not constructs:
        return inline_css(source, css)
    nonce = secrets.token_hex(4)
    originals: list[str] = []
    out: list[str] = []
    in_tag = False
    position = 0
    for start, end in constructs:
        before = source[position:start]
        in_tag = _still_in_tag(before, in_tag)
        out.append(before)
        number = len(originals)
        originals.append(source[start:end])
        out.append(f"hj{nonce}n{number}x" if in_tag else f"<!--hj{nonce}n{number}x-->")
        position = end
    out.append(source[position:])
    inlined = inline_css("".join(out), css)
    placeholder = re.compile(
        rf'<!--hj{nonce}n(\d+)x-->|&lt;!--hj{nonce}n(\d+)x--&gt;|hj{nonce}n(\d+)x(?:="")?'
    )
    return placeholder.sub(lambda m: originals[int(next(g for g in m.groups() if g))], inlined)


def jinja_constructs(source: str) -> Iterator[tuple[int, int]]:
    """Where each ``{{ … }}``, ``{% … %}`` and ``{# … #}`` starts and ends; one pass, so an
    opener without its closer costs one search, not one per opener."""
    position = 0
    while (opener := _OPENER.search(source, position)) is not None:
        end = source.find(_CLOSER[opener.group()[1]], opener.end())
        if end < 0:
            return
        yield opener.start(), end + 2
        position = end + 2


def _still_in_tag(text: str, in_tag: bool) -> bool:
    """Whether the parser is inside a tag after ``text`` (``in_tag`` before it)."""
    close = text.rfind(">")
    opened = [m.start() for m in _TAG_OPEN.finditer(text)]
    last_open = opened[-1] if opened else -1
    if last_open > close:
        return True
    if close > last_open:
        return False
    return in_tag  # neither in this text
