"""An email's inbox preview line when the editor wrote none: the first words of its text
body (:func:`preheader`, per recipient, so it reads only as many words as it needs)."""

from __future__ import annotations

import re

PREHEADER_LENGTH = 100
_RULE_CHARACTERS = "-=_*~#+"  # heading underlines, bullets, rules
_LINK_TARGET = re.compile(r"\(https?://[^\s)]*\)")


def preheader(text: str, limit: int = PREHEADER_LENGTH) -> str:
    """The first words of the text body, for the inbox's preview line: without heading
    underlines, list bullets and the URLs after links. Per recipient, so it reads only as
    many words as the line needs: the whole words of the first ``2 * limit`` characters,
    and the first ``4 * limit`` when those were mostly rules and link targets."""
    scan = limit * 2
    words = _first_words(
        text[: text.rfind(" ", 0, scan + 1) + 1] if len(text) > scan else text, limit
    )
    if len(words) <= limit and len(text) > scan:
        words = _first_words(text[: limit * 4], limit)
    if len(words) <= limit:
        return words
    cut = words[:limit].rsplit(" ", 1)[0]
    return cut.rstrip(".,;:-") + "…"


def _first_words(head: str, limit: int) -> str:
    if "(http" in head:
        head = _LINK_TARGET.sub("", head)
    kept: list[str] = []
    length = -1
    for word in head.split():
        if word.strip(_RULE_CHARACTERS):  # a word of rule characters only is left out
            kept.append(word)
            length += len(word) + 1
            if length > limit:
                break
    return " ".join(kept)
