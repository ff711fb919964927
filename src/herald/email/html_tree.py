"""HTML read into a small tree, forgiving as a browser and bounded against hostile input.

The standard library's ``html.parser`` tokenises; this module builds the tree from its
events the way browsers repair markup: a block start tag closes an open paragraph, ``<li>``
closes the previous item, cells and rows close their siblings, an end tag closes everything
opened inside it. Invisible content is left out: ``<head>``, scripts, styles, templates, SVG,
and elements with ``hidden`` or ``display:none``. Elements nested deeper than ``MAX_DEPTH``
are not added: their text joins the element at that depth, so a 10,000-deep document costs
no more than a flat one and the code that walks the tree never recurses deeply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

MAX_DEPTH = 48

VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param"}
    | {"source", "track", "wbr"}
)
HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
LISTS = frozenset({"ul", "ol", "menu"})
BLOCKS = (
    frozenset(
        {"address", "article", "aside", "blockquote", "body", "caption", "center", "dd"}
        | {"details", "dialog", "div", "dl", "dt", "fieldset", "figcaption", "figure"}
        | {"footer", "form", "header", "hgroup", "hr", "html", "li", "main", "nav", "p"}
        | {"pre", "section", "summary", "table", "tbody", "td", "tfoot", "th", "thead", "tr"}
    )
    | HEADINGS
    | LISTS
)
_SKIP = frozenset({"head", "script", "style", "template", "title", "svg", "iframe", "object"})
_CLOSES_P = BLOCKS - {"body", "caption", "html", "tbody", "td", "tfoot", "th", "thead", "tr"}
_CELL_SCOPE = frozenset({"table", "td", "th", "caption"})
_HIDDEN = re.compile(r"display\s*:\s*none", re.IGNORECASE)
_INTEGER = re.compile(r"\s*-?\d{1,9}\s*")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_LONE_LT = re.compile(r"<(?![A-Za-z/!?])")  # text to html.parser too, but one call each


@dataclass(slots=True)
class Node:
    tag: str
    attrs: dict[str, str] = field(default_factory=dict)
    children: list[Node | str] = field(default_factory=list)
    has_block: bool = False  # a block element is among the descendants


def int_attribute(node: Node, name: str, default: int) -> int:
    """An integer attribute (``start``, ``value``, ``colspan``); ``default`` when absent,
    malformed or of more than nine digits."""
    raw = node.attrs.get(name)
    return int(raw) if raw is not None and _INTEGER.fullmatch(raw) else default


def parse(html: str) -> Node:
    """The document as a tree under a ``#root`` node; text keeps its whitespace, control
    characters other than tab, newline and form feed are dropped, line ends are ``\\n``."""
    builder = _TreeBuilder()
    clean = _CONTROL.sub("", html.replace("\r\n", "\n").replace("\r", "\n"))
    builder.feed(_LONE_LT.sub("&lt;", clean))
    builder.close()
    return builder.root


def _hidden(attrs: dict[str, str]) -> bool:
    return "hidden" in attrs or bool(_HIDDEN.search(attrs.get("style", "")))


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root")
        self._stack = [self.root]
        self._skipping = ""  # the tag whose content is being left out
        self._skip_depth = 0
        self._overflow = 0  # open elements deeper than MAX_DEPTH, not in the tree

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skipping:
            if tag == self._skipping:
                self._skip_depth += 1
            elif self._skipping == "head" and tag == "body":
                self._skipping = ""
            return
        values = {name: value or "" for name, value in attrs} if attrs else {}
        if tag in _SKIP or (values and _hidden(values)):
            if tag not in VOID:
                self._skipping, self._skip_depth = tag, 1
            return
        node = Node(tag, values)
        if tag in VOID and tag != "hr":  # a leaf that closes nothing: <br>, <img>…
            self._stack[-1].children.append(node)
            return
        if self._overflow or len(self._stack) > MAX_DEPTH:
            self._overflow += tag not in VOID
            return
        closed = self._close_implied(tag)
        self._stack[-1].children.append(node)
        if tag in BLOCKS:
            for ancestor in reversed(self._stack):
                if ancestor.has_block:
                    break
                ancestor.has_block = True
        if tag not in VOID:
            self._stack.append(node)
            link = next((old for old in closed if old.tag == "a"), None)
            if link is not None and tag != "a":  # as browsers do: the link goes on inside
                self._stack[-1].children.append(reopened := Node("a", link.attrs))
                self._stack.append(reopened)

    def handle_endtag(self, tag: str) -> None:
        if self._skipping:
            if tag == self._skipping:
                self._skip_depth -= 1
                if not self._skip_depth:
                    self._skipping = ""
        elif self._overflow:
            self._overflow -= tag not in VOID
        elif tag not in VOID:
            self._close({tag}, frozenset())

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self._stack[-1].children.append(data)

    def _close_implied(self, tag: str) -> list[Node]:
        """Close what ``tag`` ends implicitly; the elements closed."""
        closed = self._close({"p"}, _CELL_SCOPE | {"button"}) if tag in _CLOSES_P else []
        if tag == "li":
            closed += self._close({"li"}, _CELL_SCOPE | LISTS | {"blockquote"})
        elif tag in {"dt", "dd"}:
            closed += self._close({"dt", "dd"}, _CELL_SCOPE | {"dl"})
        elif tag in {"td", "th"}:
            closed += self._close({"td", "th"}, {"tr", "table"})
        elif tag == "tr":
            closed += self._close({"tr"}, {"table", "tbody", "thead", "tfoot"})
        elif tag in {"tbody", "thead", "tfoot"}:
            closed += self._close({"tbody", "thead", "tfoot"}, {"table"})
        elif tag == "a":
            closed += self._close({"a"}, _CELL_SCOPE)
        elif tag in HEADINGS and self._stack[-1].tag in HEADINGS:
            closed.append(self._stack.pop())
        return closed

    def _close(self, tags: set[str], scope: frozenset[str] | set[str]) -> list[Node]:
        """Close the innermost open element named in ``tags`` unless ``scope`` comes first;
        the elements closed."""
        for index in range(len(self._stack) - 1, 0, -1):
            name = self._stack[index].tag
            if name in tags:
                closed = self._stack[index:]
                del self._stack[index:]
                return closed
            if name in scope:
                break
        return []
