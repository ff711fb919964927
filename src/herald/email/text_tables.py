"""Data tables in plain text: the rows read from the tree, then aligned columns under a
rule, or ``label: value`` lines when the columns do not fit the width."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from herald.email.html_tree import BLOCKS, HEADINGS, LISTS, Node, int_attribute
from herald.email.text_lines import columns, pad, wrap

SPANNED = Node("td")  # the columns a cell's colspan covers after its first
_STRUCTURAL = HEADINGS | LISTS | {"table", "blockquote", "pre", "hr", "dl"}
_RIGHT = re.compile(r"text-align\s*:\s*right", re.IGNORECASE)

# A row of a table as text: its cells (``None`` for a spanned column), or a line between rows.
TextRow = list[str | None] | str


@dataclass(frozen=True, slots=True)
class Table:
    rows: list[list[Node] | Node]  # a row's cells, or what stands between rows (a template tag)
    headers: int  # how many rows at the top are headers
    caption: Node | None
    presentation: bool  # role="presentation": says itself that it lays out a page

    @property
    def grid(self) -> list[list[Node]]:
        return [row for row in self.rows if isinstance(row, list)]

    def lays_out_a_page(self) -> bool:
        """A table for layout (or of one column), not data: its cells are read as blocks."""
        return (
            self.presentation
            or max(map(len, self.grid), default=0) < 2
            or any(_structural(cell) for row in self.grid for cell in row)
        )

    def right_aligned(self) -> list[bool]:
        count = max(map(len, self.grid), default=0)
        return [
            any(col < len(row) and _right(row[col]) for row in self.grid) for col in range(count)
        ]


def read(table: Node) -> Table:
    """The rows of a ``<table>`` (through ``thead``, ``tbody`` and ``tfoot``)."""
    rows: list[list[Node] | Node] = []
    headers = 0
    body = False
    caption = None
    for section in table.children:
        if isinstance(section, Node) and section.tag == "caption":
            caption = section
            continue
        grouped = isinstance(section, Node) and section.tag in {"thead", "tbody", "tfoot"}
        for row in section.children if isinstance(section, Node) and grouped else [section]:
            if isinstance(row, Node) and row.tag == "tr":
                cells = _cells(row)
                in_head = isinstance(section, Node) and section.tag == "thead"
                body = body or not (in_head or all(c.tag == "th" or c is SPANNED for c in cells))
                headers += not body
                rows.append(cells)
            elif isinstance(row, Node) or row.strip():
                rows.append(row if isinstance(row, Node) else Node("div", {}, [row]))
    all_headers = headers == sum(isinstance(row, list) for row in rows)
    headers = 0 if all_headers else headers  # labels need values to label
    return Table(rows, headers, caption, table.attrs.get("role") in {"presentation", "none"})


def _cells(row: Node) -> list[Node]:
    """A row's cells, spans filled with empty cells; stray content in the row is a cell."""
    cells: list[Node] = []
    for child in row.children:
        if isinstance(child, Node) and child.tag in {"td", "th"}:
            cells.append(child)
            span = int_attribute(child, "colspan", 1)
            cells += [SPANNED] * min(max(span - 1, 0), 50)
        elif isinstance(child, Node) or child.strip():
            cells.append(Node("td", {}, [child]))
    return cells


def _structural(node: Node) -> bool:
    """A cell holding more than a line of text: its table lays out a page."""
    blocks = [child for child in node.children if isinstance(child, Node) and child.has_block]
    inner = [child for child in node.children if isinstance(child, Node) and child.tag in BLOCKS]
    return (
        len(inner) > 1
        or any(child.tag in _STRUCTURAL for child in inner)
        or any(_structural(child) for child in blocks)
    )


def lay_out(rows: list[TextRow], headers: int, right: list[bool], width: int) -> list[str]:
    """Rows of cell texts as aligned columns (a cell spanning columns widens them only as
    far as it needs); as records when they do not fit in ``width``. Empty columns go."""
    count = max((len(row) for row in rows if isinstance(row, list)), default=0)
    padded = [row if isinstance(row, str) else row + [""] * (count - len(row)) for row in rows]
    keep = [col for col in range(count) if any(isinstance(r, list) and r[col] for r in padded)]
    if not keep:
        return []
    kept = [row if isinstance(row, str) else [row[col] for col in keep] for row in padded]
    return _aligned(kept, headers, [right[col] for col in keep], width)


def _aligned(rows: list[TextRow], headers: int, right: list[bool], width: int) -> list[str]:
    grid = [row for row in rows if isinstance(row, list)]
    header = grid[headers - 1] if headers else None  # the last header row: the labels
    widths = [0] * len(grid[0])
    spanning = []
    for cells in grid:
        for start, end, text in _spans(cells):
            if end - start == 1:
                widths[start] = max(widths[start], columns(text))
            else:
                spanning.append((start, end, columns(text)))
    for start, end, size in spanning:  # the last column's span may run on to the margin
        room = sum(widths[start:end]) + 2 * (end - start - 1)
        if end < len(widths):
            widths[end - 1] += max(0, size - room)
        elif size > room + width - sum(widths) - 2 * (len(widths) - 1):
            return _records(rows, grid[:headers], width)
    if sum(widths) + 2 * (len(widths) - 1) > width:
        return _records(rows, grid[:headers], width)
    lines: list[str] = []
    for row in rows:
        if isinstance(row, str):
            lines += wrap(row, width)
            continue
        padded = [
            pad(text, sum(widths[start:end]) + 2 * (end - start - 1), right=right[start])
            for start, end, text in _spans(row)
        ]
        lines.append("  ".join(padded).rstrip())
        if row is header:
            lines.append("  ".join("-" * size for size in widths))
    return lines


def _spans(row: list[str | None]) -> Iterator[tuple[int, int, str]]:
    """Each cell of a row with the columns it spans (``None`` marks a spanned column)."""
    start = 0
    while start < len(row):
        end = start + 1
        while end < len(row) and row[end] is None:
            end += 1
        yield start, end, row[start] or ""
        start = end


def _records(rows: list[TextRow], headers: list[list[str | None]], width: int) -> list[str]:
    """A table too wide for the line: each row as ``label: value`` lines (without a
    header row: a two-column row as ``first: second``, any other row a line per cell)."""
    lines: list[str] = []
    for row in rows:
        if any(row is header for header in headers):
            continue
        if lines:
            lines.append("")
        if isinstance(row, str):
            lines += wrap(row, width)
            continue
        if headers:
            pairs = list(zip(headers[-1], row, strict=True))
        elif len(row) == 2 and all(row):
            pairs = [(row[0], row[1])]
        else:
            pairs = [("", text) for text in row]
        for label, value in pairs:
            if value:
                lines += wrap(f"{label}: {value}" if label else value, width, hang=2)
    return lines


def _right(cell: Node) -> bool:
    return cell.attrs.get("align", "").lower() == "right" or bool(
        _RIGHT.search(cell.attrs.get("style", ""))
    )
