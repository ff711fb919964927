"""Lines of plain text: wrapping at spaces, measuring in terminal columns, blank lines."""

from __future__ import annotations

import re
import unicodedata

BLANK = "\x01"  # a blank line that is kept (in a code block), where other runs are squeezed
_GLUE = "\x02"  # a space that must not be broken (inside a template placeholder)
_PLACEHOLDER = re.compile(r"\{\{[^{}\n]{0,200}\}\}|\{%[^{}\n]{0,200}%\}|\{#[^{}\n]{0,200}#\}")


def wrap(text: str, width: int, *, hang: int = 0) -> list[str]:
    """Greedy wrapping at spaces only: a long URL stays whole on a line of its own. Lines
    after the first are indented by ``hang``."""
    glued = _PLACEHOLDER.sub(lambda match: match.group().replace(" ", _GLUE), text)
    lines: list[str] = []
    line, used = "", 0
    for word in glued.split(" "):
        if not word:
            continue
        size = columns(word)
        if line and used + 1 + size > width:
            lines.append(line)
            line, used = " " * hang + word, hang + size
        else:
            line, used = (f"{line} {word}", used + 1 + size) if line else (word, size)
    if line:
        lines.append(line)
    return [line.replace(_GLUE, " ") for line in lines]


def columns(text: str) -> int:
    """Terminal columns: wide characters (CJK, most emoji) take two, combining marks none."""
    if text.isascii():
        return len(text)
    return sum(
        0 if unicodedata.combining(char) else 2 if unicodedata.east_asian_width(char) in "WF" else 1
        for char in text
    )


def pad(text: str, size: int, *, right: bool) -> str:
    fill = " " * (size - columns(text))
    return fill + text if right else text + fill


def squeeze(lines: list[str]) -> list[str]:
    """No blank lines at either end and never two in a row."""
    kept: list[str] = []
    for line in lines:
        if line.strip() or (kept and kept[-1].strip()):
            kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    return kept
