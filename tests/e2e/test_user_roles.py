"""Users and roles in a real browser (issue 11 item 6).

An admin of a real ``herald up`` creates an editor on /admin/users; the editor signs in in
another browser context and finds no Users, API keys or Settings anywhere, and a direct
visit to /admin/users is refused (403). On the way every new page (settings overview,
users, a user, the last-admin refusal, API keys, sender identity, configuration) is
screenshotted at 1280 and 375 px, light and dark, into /tmp/herald-screens-users, with the
checks of the camera in tests/support/browser.py (no CSP violation, console error, foreign
host, overflow).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from herald.core.db import Database
from tests.support.browser import (
    Camera,
    camera_page,
    chromium,
    herald_up,
    require_browser,
    sign_in,
)

HUMAN_COPY = Path("/tmp/herald-screens-users")  # noqa: S108 - a fixed place for a human to look
EDITOR_PASSWORD = "an editor's long passphrase"
# The refusals this walk asks for on purpose log their status in the console.
EXPECTED_REFUSAL = re.compile(
    r"/admin/users(/[0-9a-f-]+/disable)?: console error: .*status of 40[39]"
)


@pytest.mark.slow
async def test_an_admin_creates_an_editor_who_sees_no_admin_pages(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    playwright_api = require_browser()
    async with herald_up(
        database_url,
        tmp_path / "up.log",
        "herald-users-",
        HERALD_EMAIL__SENDER="Herald News <news@example.com>",
    ) as herald:
        camera = Camera(tmp_path / "screens", herald.port)
        async with chromium(playwright_api) as browser:
            await walk(browser, camera, herald.base_url, herald.password)

    camera.copy_for_a_human(HUMAN_COPY)
    problems = [p for p in camera.problems if not EXPECTED_REFUSAL.search(p)]
    assert problems == [], "\n".join(problems)
    assert camera.foreign_hosts() == set(), camera.requested


async def walk(browser: Any, camera: Camera, base_url: str, password: str) -> None:
    admin = await browser.new_context(base_url=base_url)
    editor = await browser.new_context(base_url=base_url)
    page = await camera_page(admin, camera)
    other = await camera_page(editor, camera)

    await sign_in(page, "admin", password)
    await page.click("nav.mainnav a:text('Settings')")
    await page.wait_for_url("**/admin/settings")
    assert "news@example.com" in (await page.text_content("main") or "")
    await camera.shoot(page, "settings")

    # The admin creates an editor.
    await page.click("nav.tabs a:text('Users')")
    await page.wait_for_url("**/admin/users")
    await camera.shoot(page, "users-empty")
    await page.fill("#username", "ed")
    await page.fill("#password", EDITOR_PASSWORD)
    await page.select_option("#role", "editor")
    await page.click("main form[action='/admin/users'] button[type=submit]")
    await page.wait_for_url("**/admin/users")
    assert "User ed created (editor)." in (await page.text_content("main") or "")
    await camera.shoot(page, "users")
    await page.click("main table a:text('ed')")
    await page.wait_for_url(re.compile(r".*/admin/users/[0-9a-f-]{36}$"))
    await camera.shoot(page, "user")

    # The last active admin cannot disable themselves: 409, the reason on the page.
    await page.goto("/admin/users")
    await page.click("main table a:text('admin')")
    await page.wait_for_url(re.compile(r".*/admin/users/[0-9a-f-]{36}$"))
    async with page.expect_response(re.compile(r".*/disable$")) as refused:
        await page.click("main form[action$='/disable'] button")
    assert (await refused.value).status == 409
    assert "at least one active admin" in (await page.text_content("main") or "")
    await camera.shoot(page, "user-last-admin")

    for path, name in [
        ("/admin/api-keys", "api-keys"),
        ("/admin/settings/sender", "settings-sender"),
        ("/admin/settings/configuration", "settings-configuration"),
        ("/admin/password", "password"),
    ]:
        await page.goto(path)
        await camera.shoot(page, name)
    configuration = await page.request.get("/admin/settings/configuration")
    assert "HERALD_SECRET_KEY" in await configuration.text()

    # The editor signs in: no Users, API keys or Settings anywhere; /admin/users refused.
    await sign_in(other, "ed", EDITOR_PASSWORD)
    assert await other.locator("nav.mainnav a:text('Settings')").count() == 0
    await other.click("details.account summary")
    menu = await other.text_content("details.account .menu") or ""
    assert "API keys" not in menu
    assert "Change password" in menu
    for href in ("/admin/users", "/admin/api-keys", "/admin/settings"):
        assert await other.locator(f"a[href='{href}']").count() == 0, href
    await other.click("details.account summary")  # closed again for the screenshot
    await camera.shoot(other, "editor-dashboard")
    response = await other.goto("/admin/users")
    assert response.status == 403
    assert "Only admins" in (await other.text_content("main") or "")
    await camera.shoot(other, "editor-refused")
    await other.goto("/admin/issues")
    assert await other.locator("nav.mainnav a:text('Issues')").count() == 1
    await other.goto("/admin/password")
    await camera.shoot(other, "editor-password")
    await admin.close()
    await editor.close()
