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

import css_inline

_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
_TAG_OPEN = re.compile(r"<[A-Za-z/!]")


def inline_css(html: str, css: str) -> str:
    """``css`` inlined into the fragment ``html`` (its own ``<style>`` blocks too)."""
    if not css.strip() and "<style" not in html.lower():
        return html
    return css_inline.inline_fragment(html, css, keep_at_rules=False, minify_css=True)


def inline_template(source: str, css: str) -> str:
    """``css`` inlined into a Jinja template's HTML source, every Jinja construct unchanged."""
    if not _JINJA.search(source):
        return inline_css(source, css)
    nonce = secrets.token_hex(4)
    originals: list[str] = []
    out: list[str] = []
    in_tag = False
    position = 0
    for match in _JINJA.finditer(source):
        before = source[position : match.start()]
        in_tag = _still_in_tag(before, in_tag)
        out.append(before)
        number = len(originals)
        originals.append(match.group())
        out.append(f"hj{nonce}n{number}x" if in_tag else f"<!--hj{nonce}n{number}x-->")
        position = match.end()
    out.append(source[position:])
    inlined = inline_css("".join(out), css)
    placeholder = re.compile(
        rf'<!--hj{nonce}n(\d+)x-->|&lt;!--hj{nonce}n(\d+)x--&gt;|hj{nonce}n(\d+)x(?:="")?'
    )
    return placeholder.sub(lambda m: originals[int(next(g for g in m.groups() if g))], inlined)


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
