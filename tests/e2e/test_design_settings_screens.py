"""Issue 14 item 4 in a real browser: Settings → Branding and the email templates pages.

Signs in to a real ``herald up``, uploads a logo through the file input, changes the accent
(the live preview follows while typing), is refused an SVG, copies the built-in layout, is
refused a layout without its unsubscribe link (the text stays), saves a valid one and uses
it for all emails. Every page is screenshotted at 1280 and 375 px, light and dark, into a
folder the test prints (a copy in /tmp/herald-screens-branding for a human to look at),
with the checks of tests/e2e/test_design_screens.py (no CSP violation, console error,
foreign request or overflow at 375/360 px) and axe-core's (no serious or critical
violation, both schemes) as in tests/e2e/test_accessibility.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from herald.core.db import Database
from tests.e2e.test_accessibility import Auditor
from tests.support.browser import (
    Camera,
    camera_page,
    chromium,
    herald_up,
    require_browser,
    sign_in,
)
from tests.unit.design.test_logos import png

HUMAN_COPY = Path("/tmp/herald-screens-branding")  # noqa: S108 - for a human to look at
EDIT_URL = re.compile(r"/admin/templates/[0-9a-f-]{36}/edit$")
# The pages the walk has refused on purpose log their 400 in the console.
REFUSED = re.compile(r"/admin/(settings/branding/logo|templates/[0-9a-f-]{36}/edit): console")


@pytest.mark.slow
async def test_branding_and_templates_pages_in_a_browser(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    playwright_api = require_browser()
    auditor = Auditor.required()
    logo = tmp_path / "logo.png"
    logo.write_bytes(png(480, 120))
    svg = tmp_path / "logo.svg"
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')
    async with herald_up(database_url, tmp_path / "up.log", "herald-branding-") as herald:
        camera = Camera(tmp_path / "screens", herald.port)
        async with chromium(playwright_api) as browser:
            page = await camera_page(await browser.new_context(base_url=herald.base_url), camera)
            await sign_in(page, "admin", herald.password)
            await walk(page, camera, auditor, logo, svg)

    camera.copy_for_a_human(HUMAN_COPY)
    problems = [p for p in camera.problems if not REFUSED.search(p)]
    assert problems == [], "\n".join(problems)
    assert camera.foreign_hosts() == set(), camera.requested
    assert auditor.problems == [], "\n".join(auditor.problems)
    assert len(auditor.audited) >= 7


async def shoot(page: Any, camera: Camera, auditor: Auditor, name: str) -> None:
    await camera.shoot(page, name)
    await auditor.audit(page, name)


async def preview_with(page: Any, name: str, text: str) -> str:
    """The preview frame's document once it holds ``text``. Polled: the page replaces the
    frame whenever a new preview is on its way (a replaced frame is gone mid-read)."""
    content = ""
    for _ in range(100):
        frame = page.frame(name=name)
        try:
            if frame is not None:
                await frame.wait_for_load_state("load")
                content = str(await frame.content())
                if text in content and "</html>" in content:
                    return content
        except Exception:  # noqa: BLE001, S110 - the frame was replaced: read the new one
            pass
        await page.wait_for_timeout(100)
    raise AssertionError(f"the preview never showed {text!r}: {content[:300]}")


async def walk(page: Any, camera: Camera, auditor: Auditor, logo: Path, svg: Path) -> None:
    await page.goto("/admin/settings/branding")
    await preview_with(page, "branding-preview", "Herald newsletter")
    await shoot(page, camera, auditor, "branding")

    # A logo through the file input: shown on the page and in the preview.
    await page.set_input_files("#logo", str(logo))
    await page.click("text=Upload logo")
    await page.wait_for_url("**/admin/settings/branding")
    assert await page.is_visible("img.logo-thumb")
    await preview_with(page, "branding-preview", "/brand/logo/")

    # The live preview follows the typing; the picker follows the hex field.
    await page.fill("#name", "The Acme Letter")
    await page.fill("#accent", "#b5179e")
    assert await page.input_value("#accent-picker") == "#b5179e"
    assert "#b5179e" in await preview_with(page, "branding-preview", "The Acme Letter")
    await page.fill("#footer_address", "Acme Ltd, 1 Main Street, Springfield")
    await page.click("text=Save branding")
    await page.wait_for_url("**/admin/settings/branding")
    assert "The branding has been saved" in (await page.text_content("main") or "")
    await shoot(page, camera, auditor, "branding-saved")
    # On a phone the preview comes after the forms: the email at the pane's width.
    await page.set_viewport_size({"width": 375, "height": 740})
    await page.locator(".design-preview").scroll_into_view_if_needed()
    await preview_with(page, "branding-preview", "The Acme Letter")
    await page.locator(".design-preview").screenshot(path=str(camera.folder / "preview-phone.png"))
    await page.set_viewport_size({"width": 1280, "height": 800})

    # An SVG "logo": refused, saying why.
    await page.set_input_files("#logo", str(svg))
    await page.click("text=Upload logo")
    await page.wait_for_selector("#logo-error")
    assert "SVG logos are not accepted" in (await page.text_content("#logo-error") or "")
    await shoot(page, camera, auditor, "branding-logo-refused")

    # The templates: the built-in layout, copied, refused, saved, used for all emails.
    await page.goto("/admin/templates")
    await shoot(page, camera, auditor, "templates")
    await page.goto("/admin/templates/default/edit")
    await shoot(page, camera, auditor, "template-builtin")
    await page.click("text=Copy this layout")
    await page.wait_for_url(EDIT_URL)
    await shoot(page, camera, auditor, "template-edit")

    source = await page.input_value("#source")
    without_link = re.sub(r"\{\{#unsubscribe_url\}\}.*?\{\{/unsubscribe_url\}\}", "", source)
    await page.fill("#name", "Acme layout")
    await page.fill("#source", without_link + "\n<!-- typed by hand -->")
    await page.click("text=Save layout")
    await page.wait_for_selector("#layout-error")
    assert "unsubscribe_url" in (await page.text_content("#layout-error") or "")
    assert "typed by hand" in await page.input_value("#source")
    await shoot(page, camera, auditor, "template-edit-refused")

    await page.fill("#source", source.replace("{{ content }}", "<p>From Acme.</p>{{ content }}"))
    await page.click("text=Save layout")
    await page.wait_for_selector("text=The layout has been saved.")
    await page.goto("/admin/templates")
    await page.click("li:has-text('Acme layout') >> text=Use for all emails")
    await page.wait_for_url("**/admin/templates")
    assert "Every email now uses the layout" in (await page.text_content("main") or "")
    await page.click("li:has-text('Herald default') >> text=Use for all emails")
    await page.wait_for_url("**/admin/templates")
    await page.click("li:has-text('Acme layout') >> text=Delete…")
    await shoot(page, camera, auditor, "templates-delete-confirm")
