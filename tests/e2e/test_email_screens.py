"""The emails in a real browser: the fixture issue with every Markdown construct and the
confirmation email, rendered as Herald sends them, at 600 px (desktop) and 375 px (phone),
light and dark. Nothing overflows horizontally at 375 px, and each is screenshotted into a
folder the test prints, with a copy in /tmp/herald-screens-emails for a human to look at.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from herald.email.layout import Branding
from herald.issues.rendering import compile_issue
from herald.subscriptions.domain import NewSubscriber
from herald.subscriptions.emails import confirmation_email
from tests.support.browser import chromium, require_browser
from tests.unit.test_issue_emails import fixture_issue

HUMAN_COPY = Path("/tmp/herald-screens-emails")  # noqa: S108 - a fixed place for a human to look
WIDTHS = {"desktop": 600, "phone": 375}
BRANDING = Branding(name="The Herald Weekly", footer_address="Herald Ltd, 1 Example Street, Berlin")
# The fixture's image, served by the test: a 1200 px wide chart, wider than any screen.
CHART = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="1200" height="480" viewBox="0 0 1200 480">'
    '<rect width="1200" height="480" fill="#eef1fb"/>'
    '<polyline points="40,420 240,300 440,340 640,200 840,240 1040,90 1160,120" fill="none" '
    'stroke="#3451c7" stroke-width="14" stroke-linejoin="round"/></svg>'
)


def emails() -> dict[str, str]:
    issue = fixture_issue()
    compiled = compile_issue(issue.title, issue.html, issue.text, BRANDING)
    html, _ = compiled.render(
        name="Ada Lovelace",
        email="ada@example.org",
        unsubscribe_url="https://news.herald.test/unsubscribe/one-click?token=abc",
        view_url="https://news.herald.test/view/abc",
    )
    confirmation = confirmation_email(
        NewSubscriber.parse(name="Ada Lovelace", email="ada@example.org"),
        token="A" * 32,
        base_url="https://news.herald.test",
        sender="news@herald.test",
        ttl_hours=168,
        branding=BRANDING,
    )
    return {"issue": html, "confirmation": confirmation.html_body}


@pytest.mark.slow
async def test_emails_fit_every_width_in_light_and_dark(tmp_path: Path) -> None:
    playwright_api = require_browser()
    folder = tmp_path / "screens"
    folder.mkdir()
    problems: list[str] = []
    async with chromium(playwright_api) as browser:
        for name, html in emails().items():
            for width_name, width in WIDTHS.items():
                for scheme in ("light", "dark"):
                    page = await browser.new_page(
                        viewport={"width": width, "height": 900}, color_scheme=scheme
                    )
                    await page.route("**/*", serve_chart)
                    await page.set_content(html, wait_until="load")
                    scroll_width = await page.evaluate("document.scrollingElement.scrollWidth")
                    if scroll_width > width:
                        problems.append(f"{name} at {width} px ({scheme}): {scroll_width} px wide")
                    if name == "issue":
                        problems += await check_image(page, f"{name} {width} {scheme}")
                    shot = folder / f"{name}-{width_name}-{scheme}.png"
                    await page.screenshot(path=str(shot), full_page=True)
                    await page.close()
    copy_for_a_human(folder)
    assert problems == []


def copy_for_a_human(folder: Path) -> None:
    shutil.rmtree(HUMAN_COPY, ignore_errors=True)
    shutil.copytree(folder, HUMAN_COPY)
    sys.stdout.write(f"\nemail screenshots in {folder} (copy: {HUMAN_COPY})\n")


async def serve_chart(route: Any) -> None:
    if route.request.url == "https://example.org/chart.png":
        await route.fulfill(status=200, content_type="image/svg+xml", body=CHART)
    else:
        await route.abort()


async def check_image(page: Any, label: str) -> list[str]:
    """The wide chart loads and is scaled down to the content's width."""
    natural, shown, column = await page.evaluate(
        """() => {
            const img = document.querySelector('.h-content img');
            const cell = img.closest('td');
            return [img.naturalWidth, img.getBoundingClientRect().width, cell.clientWidth];
        }"""
    )
    if natural != 1200 or shown > column:
        return [f"{label}: image {natural} px shown at {shown} px in a {column} px column"]
    return []
