"""The plain-text part of an email, from its HTML: text that reads well in any mail client.

``html_to_text`` lays the HTML out the way a reader expects of a text email: paragraphs
wrapped at ``width`` columns where words allow (a URL or a ``{{ … }}`` placeholder is never
broken), ``- item`` and ``1. item`` lines without blank lines between them (nested lists
indented), tables as aligned columns or, when too wide, as ``label: value`` lines, links as
``text (url)`` with the URL once (a mail link as its address), images as their alt text, h1
and h2 underlined with ``=`` and ``-``, quotes as ``> `` lines, code blocks verbatim, and
never two blank lines in a row. A table whose cells hold paragraphs, lists or tables lays out
a page rather than data: its cells become blocks. BENCHMARKS.md ("Plain-text converter")
says why this is not inscriptis or html2text.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from herald.email import text_tables
from herald.email.html_tree import BLOCKS, HEADINGS, LISTS, Node, int_attribute, parse
from herald.email.text_lines import BLANK, columns, squeeze, wrap

MIN_WIDTH = 20  # a nested block never lays its text out narrower than this
_GAPPED = frozenset({"p", "figure", "dl"})  # blocks with a blank line before and after
_SPACE = re.compile(r"[ \t\n\r\f]+")


def html_to_text(html: str, width: int = 78) -> str:
    """``html`` as plain text in lines of at most ``width`` columns where words allow."""
    lines = _Flow(max(width, MIN_WIDTH)).add(parse(html)).block(gap=False)[0]
    return "\n".join(
        line.replace(BLANK, "").replace("\xa0", " ").rstrip() for line in squeeze(lines)
    )


# A laid-out block: its lines, and whether it wants a blank line before and after it.
_Block = tuple[list[str], bool, bool]
_EMPTY: _Block = ([], False, False)


class _Flow:
    """Lays out a container's children: runs of inline content become wrapped paragraphs,
    block children their own layout, joined with blank lines where a block wants one."""

    def __init__(self, width: int, *, tight_lists: bool = False) -> None:
        self.width = width
        self.tight_lists = tight_lists  # inside a list item: nested lists without gaps
        self.parts: list[_Block] = []
        self.inline: list[str] = []

    def add(self, node: Node) -> _Flow:
        for child in node.children:
            if isinstance(child, str):
                self.inline.append(_SPACE.sub(" ", child))
            elif child.tag in BLOCKS:
                self.flush()
                lines, before, after = _block(child, self.width)
                if lines:
                    tight = self.tight_lists and child.tag in LISTS
                    self.parts.append((lines, before and not tight, after and not tight))
            elif child.has_block and child.tag != "a":
                self.add(child)
            else:
                self.inline.append(_inline(child))
        return self

    def flush(self) -> None:
        if self.inline:
            lines = _paragraph("".join(self.inline), self.width)
            self.inline.clear()
            if lines:
                self.parts.append((lines, False, False))

    def block(self, *, gap: bool) -> _Block:
        self.flush()
        if not self.parts:
            return _EMPTY
        lines: list[str] = []
        wants_gap = False
        for part, before, after in self.parts:
            if lines and (wants_gap or before):
                lines.append("")
            lines.extend(part)
            wants_gap = after
        return lines, gap or self.parts[0][1], gap or self.parts[-1][2]


def _block(node: Node, width: int) -> _Block:
    special = _SPECIAL.get(node.tag)
    if special is not None:
        return special(node, width)
    return _Flow(width).add(node).block(gap=node.tag in _GAPPED)


def _heading(node: Node, width: int) -> _Block:
    lines = _paragraph(_inline(node), width)
    if lines and node.tag in {"h1", "h2"}:
        lines.append(("=" if node.tag == "h1" else "-") * max(map(columns, lines)))
    return lines, True, True


def _code(node: Node, _width: int) -> _Block:
    code = _verbatim(node).removeprefix("\n").rstrip()
    return [line.rstrip() or BLANK for line in code.split("\n") if code.strip()], True, True


def _quote(node: Node, width: int) -> _Block:
    return _indented(node, width, "> ", ">"), True, True


def _definition(node: Node, width: int) -> _Block:
    return _indented(node, width, "  ", ""), False, False


def _indented(node: Node, width: int, prefix: str, blank: str) -> list[str]:
    if width - len(prefix) < MIN_WIDTH:  # nested too deep to indent any further
        prefix, blank = "", ""
    inner = _Flow(width - len(prefix)).add(node).block(gap=False)[0]
    return [prefix + line if line else blank for line in squeeze(inner)]


def _list(node: Node, width: int) -> _Block:
    items = [child for child in node.children if isinstance(child, Node) and child.tag == "li"]
    markers = {id(item): "- " for item in items}
    if node.tag == "ol":
        step = -1 if "reversed" in node.attrs else 1
        number = int_attribute(node, "start", len(items) if step < 0 else 1)
        for item in items:
            number = int_attribute(item, "value", number)
            markers[id(item)] = f"{number}."
            number += step
        size = max(map(len, markers.values()), default=0)
        markers = {key: label.rjust(size) + " " for key, label in markers.items()}
    size = max(map(len, markers.values()), default=2)
    lines: list[str] = []
    stray = _Flow(width)  # content between the items, which only hand-written HTML has
    for child in node.children:
        if not (isinstance(child, Node) and child.tag == "li"):
            stray.add(Node("div", {}, [child]))
            continue
        lines += squeeze(stray.block(gap=False)[0])
        stray = _Flow(width)
        indent = size if width - size >= MIN_WIDTH else 0  # else nested too deep to indent
        flow = _Flow(width - indent, tight_lists=True).add(child)
        content = squeeze(flow.block(gap=False)[0])
        if content and columns(markers[id(child)] + content[0]) > width:
            content.insert(0, "")  # too deep: the marker alone on its line
        if content:
            lines.append((markers[id(child)] + content[0]).rstrip())
            lines += [" " * indent + line if line else "" for line in content[1:]]
    return lines + squeeze(stray.block(gap=False)[0]), True, True


def _table(node: Node, width: int) -> _Block:
    """A data table as aligned columns (or ``label: value`` lines when too wide); a table
    that lays out a page (cells holding paragraphs, lists, tables…) as its cells' blocks."""
    table = text_tables.read(node)
    if table.lays_out_a_page():
        flow = _Flow(width)
        for row in table.rows:
            for cell in row if isinstance(row, list) else [row]:
                flow.parts.append(_Flow(width).add(Node("div", {}, [cell])).block(gap=False))
        flow.parts = [part for part in flow.parts if part[0]]
        return flow.block(gap=False)
    texts: list[text_tables.TextRow] = [
        [None if cell is text_tables.SPANNED else _flat(cell) for cell in row]
        if isinstance(row, list)
        else _flat(row)
        for row in table.rows
    ]
    lines = text_tables.lay_out(texts, table.headers, table.right_aligned(), width)
    caption = wrap(_flat(table.caption), width) if table.caption else []
    return (caption + lines if lines else []), True, True


def _inline(node: Node) -> str:
    """Inline content as one string: spaces collapsed, ``<br>`` as a newline."""
    tag = node.tag
    if tag == "br":
        return "\n"
    if tag == "img":
        return _SPACE.sub(" ", node.attrs.get("alt", ""))
    parts = []
    for child in node.children:
        if isinstance(child, str):
            parts.append(_SPACE.sub(" ", child))
        elif child.tag in BLOCKS:
            parts.append(f" {_inline(child)} ")
        else:
            parts.append(_inline(child))
    text = "".join(parts)
    return _link(text, node.attrs.get("href", "")) if tag == "a" else text


def _link(text: str, href: str) -> str:
    """``text (url)``; the URL alone when it is the text; a mail link's address."""
    core = text.strip(" ")
    target = re.sub(r"[\t\n\r\f]", "", href).strip()
    if target.lower().startswith("mailto:"):
        target = unquote(target[7:].partition("?")[0])
    if not core or not target or target.startswith("#") or target.lower().startswith("javascript:"):
        return text
    shown = target if _same_address(core, target) else f"{core} ({target})"
    return text[: len(text) - len(text.lstrip(" "))] + shown + text[len(text.rstrip(" ")) :]


def _same_address(text: str, target: str) -> bool:
    def bare(value: str) -> str:
        value = re.sub(r"^(https?://|mailto:)?(www\.)?", "", value.strip().lower())
        return value.rstrip("/")

    return bare(text) == bare(target)


def _flat(node: Node) -> str:
    return _SPACE.sub(" ", _inline(node).replace("\n", " ")).strip(" \xa0")


def _verbatim(node: Node) -> str:
    parts = []
    for child in node.children:
        if isinstance(child, str):
            parts.append(child)
        elif child.tag == "br":
            parts.append("\n")
        else:
            parts.append(_verbatim(child))
    return "".join(parts)


def _paragraph(text: str, width: int) -> list[str]:
    """Lines of inline text: each ``<br>`` line wrapped; a trailing ``<br>`` adds none."""
    if "\n" not in text and not text.strip(" \xa0"):
        return []
    lines = text.split("\n")
    if len(lines) > 1 and not lines[-1].strip(" \xa0"):
        lines.pop()
    wrapped: list[str] = []
    for line in lines:
        wrapped += wrap(line.strip(" \xa0"), width) or [""]
    return wrapped


_SPECIAL = {
    **dict.fromkeys(HEADINGS, _heading),
    **dict.fromkeys(LISTS, _list),
    "pre": _code,
    "hr": lambda _node, _width: (["* * *"], True, True),
    "blockquote": _quote,
    "dd": _definition,
    "table": _table,
}
