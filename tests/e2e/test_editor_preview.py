"""The editor's preview in a real browser (issue 14 item 5): the real email at desktop
(600 px) and phone (375 px) widths, light and dark, HTML and text, with its size.

Signs in to a real ``herald up``, writes an issue with a preheader in the editor and
toggles the preview: the frame's width follows the width toggle, the dark toggle shows
the layout's dark styles (the frame's page turns dark whatever the browser prefers), the
text toggle shows the text part in the frame, the inbox line shows the preheader. Then
the same toggles without JavaScript: the width is CSS alone, the part and the colours
travel with the Preview button's post. Screenshots of the editor at 1280 and 375 px, light
and dark, for each combination of width and colours (and the text part) go to a folder
the test prints, copied to /tmp/herald-screens-preview for a human to look at.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import (
    SCHEMES,
    Camera,
    camera_page,
    chromium,
    herald_up,
    require_browser,
)

HUMAN_COPY = Path("/tmp/herald-screens-preview")  # noqa: S108 - a fixed place for a human to look
MARKDOWN = """# This week

Hello **{{ subscriber.name }}**, three things worth your time:

- a [long read](https://example.org/read) on newsletters
- a quote worth keeping
- a table of numbers

> Write what you would like to read.

| metric | before | after |
|--------|-------:|------:|
| opens  | 41 %   | 48 %  |
"""
DARK_PAGE = "rgb(17, 19, 24)"  # the layout's dark background (#111318)
WIDTHS = {"desktop": 1280, "phone": 375}
ISSUE_URL = re.compile(r".*/admin/issues/[0-9a-f-]{36}$")


async def poll(check: Any, what: str, tries: int = 150) -> None:
    """Until ``await check()`` is true (polled: the pages' CSP forbids wait_for_function)."""
    for _ in range(tries):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def frame_eval(page: Any, script: str) -> Any:
    """``script`` in the preview frame's document; None while there is none (the editor
    replaces the frame for each render, so a frame found a moment ago may be detached)."""
    from playwright.async_api import Error as PlaywrightError

    frame = page.frame(name="preview-frame")
    if frame is None:
        return None
    try:
        return await frame.evaluate(script)
    except PlaywrightError:
        return None


async def shoot(page: Any, camera: Camera, name: str) -> None:
    """The editor at 1280 and 375 px in the admin's light and dark schemes, each in a
    viewport as tall as the page (a full-page screenshot leaves a frame below the first
    screen unpainted); nothing wider than the phone (the preview scrolls in its box)."""
    for width_name, width in WIDTHS.items():
        await page.set_viewport_size({"width": width, "height": 800})
        height = await page.evaluate("document.documentElement.scrollHeight")
        await page.set_viewport_size({"width": width, "height": int(height)})
        overflow = await page.evaluate("document.documentElement.scrollWidth - innerWidth")
        if overflow > 0:
            camera.problems.append(f"{name}: {overflow}px wider than a {width}px window")
        for scheme in SCHEMES:
            await page.emulate_media(color_scheme=scheme)
            path = camera.folder / f"{name}-{width_name}-{scheme}.png"
            await page.screenshot(path=str(path))
            camera.shots.append(path)
    violations = await page.evaluate("window.__cspViolations || []")
    camera.problems += [f"{name}: CSP violation {v}" for v in violations]
    await page.set_viewport_size({"width": 1280, "height": 800})
    await page.emulate_media(color_scheme="light")


async def frame_width(page: Any) -> float:
    box = await page.locator("#preview-frame").bounding_box()
    assert box is not None
    return float(box["width"])


async def shown(page: Any, part: str, scheme: str, needle: str) -> bool:
    """The frame shows ``part`` in ``scheme`` and contains ``needle``."""
    state = await frame_eval(
        page,
        "() => ({text: document.body ? document.body.innerText : '',"
        " pre: !!document.getElementById('text-part'),"
        " bg: getComputedStyle(document.body).backgroundColor})",
    )
    if not state or needle not in state["text"]:
        return False
    if state["pre"] != (part == "text"):
        return False
    return (state["bg"] == DARK_PAGE) == (scheme == "dark")


@pytest.mark.slow
async def test_the_editor_previews_the_email_at_each_width_in_each_scheme_and_part(
    database_url: str, tmp_path: Path
) -> None:
    playwright_api = require_browser()
    async with (
        herald_up(database_url, tmp_path / "up.log", "herald-preview-") as herald,
        chromium(playwright_api) as browser,
    ):
        camera = Camera(tmp_path / "screens", herald.port)
        context = await browser.new_context(base_url=herald.base_url)
        page = await camera_page(context, camera)
        await sign_in(page, herald.password)
        await with_script(page, camera)
        no_script = await browser.new_context(base_url=herald.base_url, java_script_enabled=False)
        await without_script(await camera_page(no_script, camera), herald.password)
    camera.copy_for_a_human(HUMAN_COPY)
    assert camera.problems == [], "\n".join(camera.problems)
    assert camera.foreign_hosts() == set(), camera.requested


async def sign_in(page: Any, password: str) -> None:
    await page.goto("/login")
    await page.fill("#username", "admin")
    await page.fill("#password", password)
    await page.click("main button[type=submit]")
    await page.wait_for_url("**/admin/dashboard")


async def with_script(page: Any, camera: Camera) -> None:
    await page.goto("/admin/issues/new")
    await page.fill("#title", "Three things this week")
    await page.fill("#preheader", "A long read, a quote and the numbers")
    await page.check("input[name=format][value=markdown]")
    await page.fill("#markdown", MARKDOWN)
    await poll(lambda: shown(page, "html", "light", "Hello Sample Subscriber"), "the preview")
    assert await frame_width(page) == 600
    inbox = await page.text_content("#preview-inbox") or ""
    assert "Three things this week" in inbox
    assert "A long read, a quote and the numbers" in inbox
    size = await page.text_content("#preview-size") or ""
    assert "HTML:" in size
    assert "KB" in size
    # The footer's "View in browser" is there, as readers get it.
    link = await frame_eval(page, "() => document.querySelector('a[href$=\"/v/sample\"]') !== null")
    assert link is True

    for width in ("desktop", "phone"):
        await page.check(f"input[name=width][value={width}]")
        assert await frame_width(page) == (600 if width == "desktop" else 375)
        for scheme in ("light", "dark"):
            await page.check(f"input[name=scheme][value={scheme}]")
            await poll(lambda s=scheme: shown(page, "html", s, "Sample Subscriber"), scheme)
            await shoot(page, camera, f"editor-{width}-{scheme}")
    await page.check("input[name=part][value=text]")
    await poll(lambda: shown(page, "text", "dark", "View in your browser:"), "the text part")
    text = await frame_eval(page, "() => document.getElementById('text-part').textContent")
    assert "- a long read (https://example.org/read) on newsletters" in text
    assert await frame_width(page) == 375
    await shoot(page, camera, "editor-phone-dark-text")
    await page.check("input[name=part][value=html]")
    await poll(lambda: shown(page, "html", "dark", "Sample Subscriber"), "the HTML part again")

    # Saved: the issue's page shows its preheader and its HTML's size.
    await page.click("text=Save draft")
    await page.wait_for_url(ISSUE_URL)
    preheader = await page.text_content("#issue-preheader") or ""
    assert "A long read, a quote and the numbers" in preheader
    assert "KB" in (await page.text_content("#html-size") or "")
    await shoot(page, camera, "issue-with-preheader")


async def without_script(page: Any, password: str) -> None:
    """The Preview button posts the form (the toggles with it) into the frame; the width
    toggle is CSS."""
    await sign_in(page, password)
    await page.goto("/admin/issues/new")
    await page.fill("#title", "Without script")
    await page.fill("#markdown", "Hello **{{ subscriber.name }}**, no script here.")
    await page.check("input[name=scheme][value=dark]")
    await page.click("#preview-button")
    await poll(lambda: shown(page, "html", "dark", "no script here."), "the dark preview")
    assert await frame_width(page) == 600
    await page.check("input[name=width][value=phone]")
    assert await frame_width(page) == 375
    await page.check("input[name=part][value=text]")
    await page.click("#preview-button")
    await poll(lambda: shown(page, "text", "dark", "no script here."), "the text part")
