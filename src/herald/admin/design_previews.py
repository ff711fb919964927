"""Previews of the email design: a sample issue (``samples/sample_issue.md``: every Markdown
construct) rendered exactly as an issue is — compiled into a layout with a branding, for the
sample subscriber — off the event loop and under the sandbox's time limit.

The documents are shown in sandboxed frames with the issue preview's policy
(:data:`herald.admin.issue_editor.FRAMED_PREVIEW_CSP`), never inside an admin page.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache
from importlib.resources import files
from typing import TYPE_CHECKING

from herald.core.config import Settings
from herald.core.db import Database
from herald.design.domain import parse_accent, parse_footer_address, parse_name
from herald.design.service import DesignService
from herald.issues.markdown import markdown_to_html
from herald.issues.rendering import compile_issue, off_loop, render_or_refuse
from herald.subscriptions.unsubscribe import inert_unsubscribe_url

if TYPE_CHECKING:
    from herald.email.layout import Branding

SAMPLE_TITLE = "A sample issue"
SAMPLE_NAME = "Sample Subscriber"
SAMPLE_EMAIL = "sample@example.com"


@cache
def sample_html() -> str:
    source = files("herald.admin").joinpath("samples/sample_issue.md").read_text(encoding="utf-8")
    return markdown_to_html(source)


@dataclass(frozen=True)
class DesignPreviews:
    db: Database
    settings: Settings

    @property
    def _design(self) -> DesignService:
        return DesignService(self.db, self.settings)

    async def current(self) -> str:
        """The sample in the design every email uses now."""
        design = await self._design.current()
        return await self._sample(design.branding, design.layout_source)

    async def branding(self, *, name: str, accent: str, footer_address: str) -> str:
        """The sample with unsaved branding values (the branding form's live preview)."""
        design = await self._design.current()
        branding = replace(
            design.branding,
            name=parse_name(name),
            accent=parse_accent(accent),
            footer_address=parse_footer_address(footer_address),
        )
        return await self._sample(branding, design.layout_source)

    async def layout(self, raw_id: str) -> str:
        """The sample in a listed layout, with the branding in force."""
        layout = await self._design.layout(raw_id)
        design = await self._design.current()
        return await self._sample(design.branding, None if layout.builtin else layout.source)

    async def source(self, source: str) -> str:
        """The sample in unsaved MJML (the layout editor's preview); a layout that would be
        refused on save is refused here with the same message."""
        await self._design.check_layout(source)
        design = await self._design.current()
        return await self._sample(design.branding, source.replace("\r\n", "\n"))

    async def _sample(self, branding: Branding, layout_source: str | None) -> str:
        base = self.settings.public_base_url

        def render() -> str:
            compiled = compile_issue(
                SAMPLE_TITLE, sample_html(), "", branding, layout_source=layout_source
            )
            html, _ = compiled.render(
                name=SAMPLE_NAME,
                email=SAMPLE_EMAIL,
                unsubscribe_url=inert_unsubscribe_url(self.settings),
                view_url=f"{base}/admin/templates",
            )
            return str(html)

        html = await off_loop(lambda: render_or_refuse(render))
        return html.replace("<title>", "<title>Preview: ", 1)
