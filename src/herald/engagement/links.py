"""An issue's trackable links: found in its HTML body and rewritten once per issue.

At publishing, :func:`tracked_links` lists the distinct targets of the body's ``<a href>``
links — absolute ``http(s)`` URLs written as they are, in order of first appearance, at
most :data:`MAX_LINKS` — and the list is stored with the issue (``issue_tracking.links``).
A worker compiling the issue rewrites each such ``href`` into ``{{ herald_click }}/n``
(:func:`rewrite`), ``n`` being the target's index in the *stored* list, so the template is
rewritten once per issue and a recipient's render only fills in their click prefix. A
target that is not in the stored list (a body changed by a newer release's extraction)
keeps its plain link.

Never rewritten: links whose ``href`` holds template code (``{{ unsubscribe_url }}``,
``https://x.org/?u={{ subscriber.email }}``: their target differs per reader and could not
be stored), links written inside template code (``{% set cta = '<a href="…">' %}``) or a
``{% raw %}`` block (Jinja prints them as written, so a click variable put in them would
reach the reader as text), ``mailto:`` and other schemes, and Herald's own links
(unsubscribe, preference centre, web copy, tracking). The layout's footer links
(unsubscribe, preferences, "view in browser") are not part of the body at all. The text part
keeps plain links: only the HTML part is tracked.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

MAX_LINKS = 500
MAX_URL_LENGTH = 2000
CLICK_VARIABLE = "herald_click"
# A link's start tag up to the next "<" or ">" (never past it: one linear pass over any
# body, also "<a <a <a …"), then its href within that text.
_TAG = re.compile(r"<a\b[^<>]*", re.IGNORECASE)
_HREF = re.compile(r"""(\shref\s*=\s*)(?:"([^"]*)"|'([^']*)')""", re.IGNORECASE)
_TEMPLATE_CODE = ("{{", "{%", "{#")
_OWN_PATHS = ("/unsubscribe", "/preferences", "/v/", "/t/")
_CONTROL = re.compile(r"[\x00-\x20\x7f]")
_OPENER = re.compile(r"\{[{%#]")
_CLOSER = {"{": "}}", "%": "%}", "#": "#}"}
_ENDRAW = re.compile(r"\{%[-+]?\s*endraw\s*[-+]?%\}")


def _masked(source: str) -> str:
    """The source with the inside of each ``{{ … }}``, ``{% … %}`` and ``{# … #}`` blanked,
    and of each ``{% raw %}`` block, at the same offsets: what the link patterns may read.
    One pass (an opener without its closer ends the search)."""
    if "{" not in source:
        return source
    parts: list[str] = []
    position = 0
    while (opener := _OPENER.search(source, position)) is not None:
        end = source.find(_CLOSER[opener.group()[1]], opener.end())
        if end < 0:
            break
        if opener.group() == "{%" and source[opener.end() : end].strip(" \t\r\n-+") == "raw":
            endraw = _ENDRAW.search(source, end)
            if endraw is None:
                break
            end = endraw.start()  # the block blanked up to its {% endraw %}
        parts += (source[position : opener.end()], " " * (end - opener.end()))
        position = end
    parts.append(source[position:])
    return "".join(parts)


def _target(raw: str, base_url: str) -> str | None:
    """The URL a link's ``href`` attribute value opens, when it is one to track."""
    if any(code in raw for code in _TEMPLATE_CODE):
        return None
    url = html.unescape(raw).strip()
    if not url.lower().startswith(("http://", "https://")) or len(url) > MAX_URL_LENGTH:
        return None
    if _CONTROL.search(url):
        return None
    if base_url and url.startswith(base_url):
        path = url[len(base_url) :]
        if path.startswith(_OWN_PATHS):
            return None
    return url


def tracked_links(source: str, base_url: str) -> tuple[str, ...]:
    """The distinct trackable link targets of an HTML body, in order of first appearance."""
    found: dict[str, None] = {}
    for tag in _TAG.finditer(_masked(source)):
        match = _HREF.search(tag.group(0))
        if match is None:
            continue
        raw = match.group(2) if match.group(2) is not None else match.group(3)
        url = _target(raw, base_url)
        if url is not None and url not in found:
            if len(found) == MAX_LINKS:
                break
            found[url] = None
    return tuple(found)


def rewrite(source: str, links: Sequence[str], base_url: str) -> str:
    """The body with each link to a target of ``links`` pointing at the reader's click URL
    for its index: ``{{ herald_click }}/n`` (a variable each render fills in)."""
    if not links:
        return source
    index = {url: n for n, url in enumerate(links)}
    out: list[str] = []
    position = 0  # in ``source``: the masked text has the same offsets
    for tag in _TAG.finditer(_masked(source)):
        match = _HREF.search(tag.group(0))
        if match is None:
            continue
        group = 2 if match.group(2) is not None else 3
        url = _target(match.group(group), base_url)
        n = index.get(url) if url is not None else None
        if n is None:
            continue
        out += (
            source[position : tag.start() + match.start(group)],
            f"{{{{ {CLICK_VARIABLE} }}}}/{n}",
        )
        position = tag.start() + match.end(group)
    out.append(source[position:])
    return "".join(out)


def pixel(open_url: str) -> str:
    """The open pixel, placed after the body's content."""
    return (
        f'<img src="{open_url}" width="1" height="1" alt="" '
        'style="display:block;width:1px;height:1px;border:0;margin:0;padding:0">'
    )
