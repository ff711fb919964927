"""An issue's preview: its email as the editor sees it before anyone gets it. No I/O.

The preview is the rendered email itself (``issues/views.py`` renders it the way a test
send does), shown as a document of its own in the editor's sandboxed frame:

* the HTML part, in the light or the dark colour scheme on demand. The layout's dark
  rules sit under ``@media (prefers-color-scheme: dark)``, which a frame follows from the
  viewer's system; so the preview's copy of the document (never a sent email) rewrites
  that query to apply always (``dark``) or never (``light``);
* or the text part, as a reader's client shows it: the lines as they are, wrapped at the
  width of the frame.

With the HTML's size against Gmail's clipping limit and the inbox line (the subject and
the preheader).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from herald.core.errors import ValidationError

# Gmail clips an email's HTML above 102 KB ("[Message clipped] View entire message").
GMAIL_CLIP_BYTES = 102 * 1024
SCHEMES = ("light", "dark")
PARTS = ("html", "text")
_DARK_QUERY = re.compile(r"@media\s*\(\s*prefers-color-scheme\s*:\s*dark\s*\)", re.IGNORECASE)
# The text part in a frame: the layout's own colours for either scheme.
_TEXT_STYLE = {
    "light": "background:#ffffff;color:#1f2328",
    "dark": "background:#111318;color:#e6e8ec",
}


def parse_scheme(value: str | None) -> str:
    """``light``, ``dark``, or "" (absent: as the viewer's system); else a 400."""
    scheme = (value or "").strip()
    if scheme and scheme not in SCHEMES:
        raise ValidationError("scheme must be light or dark", field="scheme")
    return scheme


def parse_part(value: str | None) -> str:
    """``html`` (the default) or ``text``; else a 400."""
    part = (value or "html").strip() or "html"
    if part not in PARTS:
        raise ValidationError("part must be html or text", field="part")
    return part


def in_scheme(document: str, scheme: str) -> str:
    """The HTML with the layout's dark rules applied always (``dark``), never (``light``),
    or as the viewer's system says (""): the media query rewritten, nothing else."""
    if not scheme:
        return document
    return _DARK_QUERY.sub("@media all" if scheme == "dark" else "@media not all", document)


@dataclass(frozen=True, slots=True)
class IssuePreview:
    title: str
    html: str
    text: str
    preheader: str = ""  # what an inbox shows after the subject

    @property
    def html_bytes(self) -> int:
        return len(self.html.encode())

    @property
    def clipped(self) -> bool:
        """Gmail would clip it."""
        return self.html_bytes > GMAIL_CLIP_BYTES

    def as_json(self) -> dict[str, object]:
        return {
            "title": self.title,
            "preheader": self.preheader,
            "text": self.text,
            "html_bytes": self.html_bytes,
            "clip_bytes": GMAIL_CLIP_BYTES,
            "clipped": self.clipped,
        }

    def document(self, scheme: str = "", part: str = "html") -> str:
        """The chosen part as a page of its own, titled after the issue and marked a
        preview: the HTML part (a complete document: the email layout's) in ``scheme``,
        or the text part."""
        if part == "text":
            return self._text_document(scheme or "light")
        if self.html.startswith("<!doctype html>"):
            return in_scheme(self.html.replace("<title>", "<title>Preview: ", 1), scheme)
        return (
            '<!doctype html>\n<html><head><meta charset="utf-8">'
            f"<title>Preview: {html.escape(self.title)}</title></head>\n"
            f"<body>\n{self.html}</body></html>\n"
        )

    def _text_document(self, scheme: str) -> str:
        return (
            '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="color-scheme" content="{scheme}">'
            f"<title>Preview (text): {html.escape(self.title)}</title>"
            f"<style>html,body{{margin:0;min-height:100%;{_TEXT_STYLE[scheme]}}}"
            "pre{margin:0;padding:16px;white-space:pre-wrap;overflow-wrap:anywhere;"
            "font:13px/1.5 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}</style>"
            f'</head>\n<body><pre id="text-part">{html.escape(self.text)}</pre></body></html>\n'
        )
