"""Keyboard only: sign in, write an issue, test-send it, publish it (issue 11, "Must show").

A real ``herald up`` in Chromium, driven with Tab, Shift+Tab, Enter, Space and typing —
no click, no ``fill``. Every element the keyboard reaches on the way must show where the
focus is (an outline or a box shadow). The first Tab on a page reaches "Skip to content".
The test send lands in the development outbox; the publish goes through the confirmation
page and the issue's progress reaches 100 %.

The rest of the issue's browser flow is shown elsewhere: live progress in
test_browser_progress.py, search, timeline and delete in test_subscriber_screens.py, the
editor role in test_user_roles.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from herald.core.db import Database
from tests.support.browser import (
    add_confirmed_subscribers,
    chromium,
    herald_up,
    require_browser,
)
from tests.support.processes import outbox
from tests.support.queue import wait_until

SUBSCRIBERS = 5
ISSUE_URL = re.compile(r"/admin/issues/[0-9a-f-]{36}$")
# The focused element and whether it shows a focus ring (outline or box shadow).
FOCUSED = """() => {
  const el = document.activeElement;
  const style = getComputedStyle(el);
  const outline = style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0;
  return {
    tag: el.tagName.toLowerCase(), id: el.id, text: (el.textContent || "").trim().slice(0, 40),
    ring: outline || style.boxShadow !== "none",
  };
}"""


class Keyboard:
    """Moves the focus with Tab (or Shift+Tab) only; records elements without a focus ring."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.unringed: list[str] = []
        self.stops = 0

    async def tab_to(self, selector: str, backwards: bool = False, limit: int = 60) -> None:
        """Press Tab until ``selector`` has the focus; every stop on the way must show it."""
        key = "Shift+Tab" if backwards else "Tab"
        for _ in range(limit):
            if await self.page.evaluate("(s) => document.activeElement.matches(s)", selector):
                return
            await self.page.keyboard.press(key)
            self.stops += 1
            focused = await self.page.evaluate(FOCUSED)
            if focused["tag"] != "body" and not focused["ring"]:
                self.unringed.append(f"{self.page.url}: {focused}")
        raise AssertionError(f"{limit} presses of {key} never reached {selector}")

    async def type_into(self, selector: str, text: str) -> None:
        await self.tab_to(selector)
        await self.page.keyboard.type(text)

    async def activate(self, selector: str, key: str = "Enter") -> None:
        await self.tab_to(selector)
        await self.page.keyboard.press(key)


@pytest.mark.slow
async def test_sign_in_write_test_send_and_publish_with_the_keyboard_only(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    playwright_api = require_browser()
    await add_confirmed_subscribers(db, SUBSCRIBERS)
    async with (
        herald_up(
            database_url,
            tmp_path / "up.log",
            "herald-keyboard-",
            HERALD_DELIVERY__POLL_INTERVAL_SECONDS="0.2",
        ) as herald,
        chromium(playwright_api) as browser,
    ):
        page = await (await browser.new_context(base_url=herald.base_url)).new_page()
        page.set_default_timeout(15_000)
        keys = Keyboard(page)
        await drive(page, keys, herald.password, herald.env, herald.base_url)
    assert keys.stops > 10
    assert keys.unringed == [], "\n".join(keys.unringed)


async def drive(page: Any, keys: Keyboard, password: str, env: dict[str, str], base: str) -> None:
    # Sign in (the username has the focus already).
    await page.goto("/login")
    await keys.type_into("#username", "admin")
    await keys.type_into("#password", password)
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/admin/dashboard")
    await page.keyboard.press("Tab")  # the first stop on a page: the skip link
    assert (await page.evaluate(FOCUSED))["text"] == "Skip to content"

    # Issues, New issue: write it (Space picks Markdown), save it with Enter.
    await keys.activate("nav.mainnav a[href='/admin/issues']")
    await page.wait_for_url("**/admin/issues")
    await keys.activate("main a[href='/admin/issues/new']")
    await page.wait_for_url("**/admin/issues/new")
    await keys.type_into("#title", "Typed, not clicked")
    await keys.activate("input[name=format][value=markdown]", key="Space")
    assert await page.is_checked("input[name=format][value=markdown]")
    await keys.type_into("#markdown", "Hello **{{ subscriber.name }}**, from the keyboard.")
    await keys.activate("main form button[type=submit]:not([formaction])")
    await page.wait_for_url(ISSUE_URL)
    issue_url = page.url.removeprefix(base)
    assert await page.text_content("#issue-status") == "draft"

    # A test send: it lands in the development outbox.
    await keys.type_into("#test-email", "proof@example.com")
    await keys.activate("form[action$='/test'] button[type=submit]")
    await page.wait_for_selector("text=A test email is on its way to proof@example.com.")
    printed = ""

    async def proof_arrived() -> bool:
        nonlocal printed
        printed = await outbox(env, "proof@example.com")
        return "from the keyboard." in printed

    await wait_until(proof_arrived, timeout=60, interval=0.2)
    assert "Typed, not clicked" in printed

    # Publish… (back up the page with Shift+Tab), then confirm with Space.
    await keys.tab_to("#publish", backwards=True)
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"{base}{issue_url}/publish")
    assert f"{SUBSCRIBERS} confirmed subscribers" in (await page.text_content("main") or "")
    await keys.activate("#confirm-publish", key="Space")
    await page.wait_for_url(f"{base}{issue_url}")
    for _ in range(600):  # polled: the page's CSP forbids wait_for_function's eval
        if await page.text_content("#issue-status") == "sent":
            break
        await page.wait_for_timeout(100)
    assert await page.text_content("#issue-status") == "sent"
    assert await page.eval_on_selector("#progress-bar", "el => el.value") == 100
