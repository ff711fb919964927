"""An allow-list HTML sanitiser for the archive's copy of an issue: what a mail client keeps.

The editor's HTML goes to readers' mail clients, which drop scripts, frames, forms and event
handlers; on the web and in feed readers nothing would. So the public copy keeps only
formatting elements and attributes (inline styles included: the email's typography is
inlined into them), links and images to ``http(s)``, ``mailto:`` and inline raster images,
and drops everything else — an unknown element keeps its text, a script, style, frame or
form control goes with its content. The page's policy forbids scripts besides (routes).
"""

from __future__ import annotations

import re
from html import escape
from html.parser import HTMLParser


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_TAGS = _words(
    "a abbr address article aside b bdi bdo big blockquote br caption center cite code "
    "col colgroup dd del details dfn div dl dt em figcaption figure font footer h1 h2 h3 "
    "h4 h5 h6 header hr i img ins kbd li main mark nav ol p picture pre q s samp section "
    "small span strike strong sub summary sup table tbody td tfoot th thead time tr tt u "
    "ul var wbr"
)
_VOID = frozenset({"br", "col", "hr", "img", "wbr"})
# Every element HTML gives no end tag: a dropped one never opens anything to close.
_EMPTY = _VOID | _words("area base embed frame input keygen link meta param source track")
# Dropped with everything inside them.
_DROP = _words(
    "script style iframe frame frameset object embed applet template noscript svg math "
    "head title textarea select option button input link meta base audio video "
    "source track canvas dialog"
)
_ATTRIBUTES = _words(
    "align alt bgcolor border cellpadding cellspacing cite class color colspan datetime "
    "dir face height href lang rowspan size span src start style title type valign width"
)
_URL_ATTRIBUTES = frozenset({"href", "src", "cite"})
_SAFE_URL = re.compile(r"(https?://|mailto:|#|/(?!/))", re.I)
_DATA_IMAGE = re.compile(r"data:image/(png|gif|jpeg|webp);base64,", re.I)
_BAD_STYLE = re.compile(r"expression|javascript:|vbscript:|behavior|-moz-binding|@import", re.I)
_INVISIBLE = re.compile(r"[\x00-\x20\x7f]+")


def sanitize(html: str) -> str:
    cleaner = _Cleaner()
    cleaner.feed(html)
    cleaner.close()
    return cleaner.result()


def _clean_url(name: str, value: str) -> str | None:
    url = _INVISIBLE.sub("", value)  # "java\tscript:" is javascript: to a browser
    if _SAFE_URL.match(url):
        return value.strip()
    if name == "src" and _DATA_IMAGE.match(url):
        return url
    return None


class _Stack:
    """The names of the elements we are inside, innermost last; membership by a count per
    name, so no end tag walks the stack (a body of unmatched tags stays one linear pass)."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.counts: dict[str, int] = {}

    def __bool__(self) -> bool:
        return bool(self.names)

    def __contains__(self, name: str) -> bool:
        return self.counts.get(name, 0) > 0

    def push(self, name: str) -> None:
        self.names.append(name)
        self.counts[name] = self.counts.get(name, 0) + 1

    def pop(self) -> str:
        name = self.names.pop()
        self.counts[name] -= 1
        return name

    def pop_to(self, name: str) -> None:
        """Pop up to the innermost ``name``, which must be in the stack."""
        while self.pop() != name:
            pass


class _Cleaner(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.open = _Stack()  # the kept elements we are inside
        self.dropping = _Stack()  # the dropped elements we are inside

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.dropping or tag in _DROP:
            self._dropped_start(tag)
            return
        if tag not in _TAGS:
            return
        kept = []
        for name, raw in attrs:
            value = raw or ""
            if name not in _ATTRIBUTES:
                continue
            if name in _URL_ATTRIBUTES:
                clean = _clean_url(name, value)
                if clean is None:
                    continue
                value = clean
            elif name == "style" and _BAD_STYLE.search(value):
                continue
            kept.append(f' {name}="{escape(value)}"')
        if tag == "a":
            kept.append(' rel="noopener nofollow"')
        self.out.append(f"<{tag}{''.join(kept)}>")
        if tag not in _VOID:
            self.open.push(tag)

    def _dropped_start(self, tag: str) -> None:
        """A start tag of a dropped element, or inside one."""
        if tag == "body" and "head" in self.dropping:  # <body> ends a head left open
            self.dropping.pop_to("head")
        elif tag in _DROP and tag not in _EMPTY:
            self.dropping.push(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID and self.open and self.open.names[-1] == tag:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if self.dropping:
            if tag in self.dropping:  # it ends, and whatever was left open in it (<option>)
                self.dropping.pop_to(tag)
            return
        if tag not in self.open:
            return
        while (last := self.open.pop()) != tag:
            self.out.append(f"</{last}>")
        self.out.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        if not self.dropping:
            self.out.append(escape(data, quote=False))

    def result(self) -> str:
        return "".join(self.out) + "".join(f"</{tag}>" for tag in reversed(self.open.names))
