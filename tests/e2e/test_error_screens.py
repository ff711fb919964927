"""The admin's error pages in a real browser: an editor refused /admin/users and
/admin/settings (403), an admin's unknown issue, subscriber and path (404). Each keeps the
signed-in frame (the navigation of the role, the account menu) and leads back; each is
screenshotted at 1280 and 375 px, light and dark, into /tmp/herald-screens-errors, with the
camera's checks (no CSP violation, foreign host or overflow; the console's only complaint
is the error status itself).
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from herald.auth.domain import Role
from herald.core.config import Settings
from herald.core.db import Database
from tests.support.browser import Camera, camera_page, chromium, herald_up, require_browser, sign_in
from tests.support.newsletters import PASSWORD, add_user

HUMAN_COPY = Path("/tmp/herald-screens-errors")  # noqa: S108 - a fixed place for a human to look
EXPECTED = re.compile(r"console error: Failed to load resource: .*status of 40[34]")


@pytest.mark.slow
async def test_error_pages_keep_the_signed_in_frame(
    database_url: str, db: Database, settings: Settings, tmp_path: Path
) -> None:
    playwright_api = require_browser()
    async with herald_up(database_url, tmp_path / "up.log", "herald-errors-") as herald:
        await add_user(db, settings, "ed", Role.EDITOR)
        camera = Camera(tmp_path / "screens", herald.port)
        async with chromium(playwright_api) as browser:
            await walk(browser, camera, herald.base_url, herald.password)

    camera.copy_for_a_human(HUMAN_COPY)
    problems = [p for p in camera.problems if not EXPECTED.search(p)]
    assert problems == [], "\n".join(problems)
    assert camera.foreign_hosts() == set(), camera.requested


async def nav(page: Any) -> list[str]:
    return [text.strip() for text in await page.locator("nav.mainnav a").all_text_contents()]


async def walk(browser: Any, camera: Camera, base_url: str, password: str) -> None:
    admin = await camera_page(await browser.new_context(base_url=base_url), camera)
    editor = await camera_page(await browser.new_context(base_url=base_url), camera)

    await sign_in(editor, "ed", PASSWORD)
    for path, name in (("/admin/users", "editor-403-users"), ("/admin/settings", "editor-403")):
        response = await editor.goto(path)
        assert response.status == 403
        assert await nav(editor) == [
            "Dashboard",
            "Issues",
            "Subscribers",
            "Lists",
            "Segments",
            "Templates",
        ]
        assert "Only admins" in (await editor.text_content("main") or "")
        await camera.shoot(editor, name)
    await editor.click("main a.button:text('Back to the dashboard')")
    await editor.wait_for_url("**/admin/dashboard")

    await sign_in(admin, "admin", password)
    for path, name, back in (
        (f"/admin/issues/{uuid.uuid4()}", "admin-404-issue", "/admin/issues"),
        (f"/admin/subscribers/{uuid.uuid4()}", "admin-404-subscriber", "/admin/subscribers"),
        ("/admin/nonsense", "admin-404", "/admin/dashboard"),
    ):
        response = await admin.goto(path)
        assert response.status == 404
        assert await nav(admin) == [
            "Dashboard",
            "Issues",
            "Subscribers",
            "Lists",
            "Segments",
            "Templates",
            "Settings",
        ]
        await camera.shoot(admin, name)
        await admin.click("main a.button")
        await admin.wait_for_url(f"**{back}")
    # The account menu opens on an error page as anywhere else (its script runs).
    await admin.goto("/admin/nonsense")
    await admin.click("details.account summary")
    assert "Sign out" in (await admin.text_content("details.account .menu") or "")
    await camera.shoot(admin, "admin-404-menu")
