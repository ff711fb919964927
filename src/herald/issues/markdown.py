"""Markdown bodies of issues and welcome emails: CommonMark (with tables) to HTML, the
template's Jinja constructs kept intact.

Markdown escapes what it sees as text, so ``{{ subscriber.name | default("friend") }}``
would come out as ``default(&quot;friend&quot;)``, a template error, and ``{% if a < b %}``
as ``&lt;``. Every construct (``{{ … }}``, ``{% … %}``, ``{# … #}``) is swapped for a
word-like placeholder before Markdown runs and put back, as written, in the HTML and in the
text part derived from it.
"""

from __future__ import annotations

import re
import secrets
from functools import cache

from markdown_it import MarkdownIt

from herald.core import timebox
from herald.core.errors import ValidationError
from herald.email.inline import jinja_constructs
from herald.email.plaintext import html_to_text

_PLACEHOLDER = re.compile(r"hj[0-9a-f]{8}n[0-9]+x")


@cache
def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": True, "linkify": False, "typographer": False}).enable(
        "table"
    )


# A legitimate 1 MB issue converts in ~1.5 s here; two million "[" took ~20 s (markdown-it
# tries each as a link), holding one of the render pool's two threads for all of it.
MARKDOWN_SECONDS = 5.0


def _render(protected: str) -> str:
    try:
        rendered: str = timebox.run_limited(lambda: _markdown().render(protected), MARKDOWN_SECONDS)
    except timebox.TimeLimitExceeded:
        raise ValidationError(
            f"the Markdown took longer than {MARKDOWN_SECONDS:g} seconds to convert",
            field="markdown",
        ) from None
    return rendered


def markdown_to_html(source: str) -> str:
    """``source`` as HTML, its Jinja constructs as written."""
    protected, originals = protect_template(source)
    return restore_template(_render(protected), originals)


def markdown_bodies(source: str) -> tuple[str, str]:
    """The HTML and the text part of a Markdown body, Jinja constructs intact in both (the
    text is derived from the HTML before they are put back, so a ``<`` in a construct is
    never read as a tag). A conversion slower than :data:`MARKDOWN_SECONDS` is a 400."""
    protected, originals = protect_template(source)
    html = _render(protected)
    return restore_template(html, originals), restore_template(html_to_text(html), originals)


def protect_template(source: str) -> tuple[str, dict[str, str]]:
    """``source`` with every Jinja construct (``{{ … }}``, ``{% … %}``, ``{# … #}``)
    swapped for a word-like placeholder, so that Markdown leaves them alone (it would
    escape the quotes of ``default("friend")`` into ``&quot;``, a template error), and the
    placeholders to put back."""
    nonce = secrets.token_hex(4)
    originals: dict[str, str] = {}
    out: list[str] = []
    position = 0
    for start, end in jinja_constructs(source):
        key = f"hj{nonce}n{len(originals)}x"
        originals[key] = source[start:end]
        out.append(source[position:start])
        out.append(key)
        position = end
    out.append(source[position:])
    return "".join(out), originals


def restore_template(text: str, originals: dict[str, str]) -> str:
    """The placeholders of :func:`protect_template` replaced by their constructs again."""
    if not originals:
        return text
    return _PLACEHOLDER.sub(lambda m: originals.get(m.group(), m.group()), text)
