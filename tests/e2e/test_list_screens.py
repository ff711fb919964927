"""The lists in Chromium: the admin's lists, a new list, its page with the form snippet
and its copy button, a refused edit, deleting with confirmation; the public page
/l/{slug} and a sign-up through it; the snippet posted from a page of another origin.
At desktop and phone widths, light and dark.

Screenshots go to a folder the test prints, with a copy in /tmp/herald-screens-lists. The
camera of tests/support/browser.py checks each page: no CSP violation, console error,
foreign host, or anything wider than a phone.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from herald.core.config import Settings
from herald.core.db import Database
from herald.lists.domain import ListDraft
from herald.lists.service import ListService
from tests.e2e.test_accessibility import Auditor
from tests.support.axe import AxeUnavailable, axe_source
from tests.support.browser import Camera, camera_page, chromium, herald_up, require_browser, sign_in
from tests.support.database import make_settings

HUMAN_COPY = Path("/tmp/herald-screens-lists")  # noqa: S108 - for a human to look at
DESCRIPTION = (
    "Dispatches from the allotment: what to sow this month, what went wrong last month, "
    "and a recipe for whatever grew too well.\n\nOne email a month, never more."
)


async def seed(db: Database, settings: Settings) -> uuid.UUID:
    service = ListService(db, settings)
    garden = await service.create(
        ListDraft.parse(name="Garden Notes", slug="garden", description=DESCRIPTION)
    )
    await service.create(
        ListDraft.parse(name="Members' Briefing", slug="members", visibility="private")
    )
    await service.create(ListDraft.parse(name="Product updates", opt_in="single"))
    ids = [uuid.uuid4() for _ in range(40)]
    async with db.connection() as conn:
        await conn.executemany(
            "INSERT INTO subscriptions (id, email, name, status) VALUES ($1, $2, $3, $4)",
            [
                (
                    i,
                    f"reader{n}@example.org",
                    f"Reader {n}",
                    ("confirmed", "pending_confirmation")[n % 2],
                )
                for n, i in enumerate(ids)
            ],
        )
        await conn.executemany(
            "INSERT INTO list_memberships (list_id, subscriber_id, status, source)"
            " VALUES ($1, $2, $3, 'test')",
            [
                (garden.id, i, ("confirmed", "unsubscribed", "pending_confirmation")[n % 3])
                for n, i in enumerate(ids[:25])
            ],
        )
    return garden.id


@pytest.mark.slow
async def test_list_pages_in_a_browser(database_url: str, db: Database, tmp_path: Path) -> None:
    playwright_api = require_browser()
    try:
        auditor: Auditor | None = Auditor(axe_source())
    except AxeUnavailable:  # the accessibility test itself fails in CI for that
        auditor = None
    garden = await seed(db, make_settings(database_url))
    async with herald_up(database_url, tmp_path / "up.log", "herald-list-screens-") as herald:
        camera = Camera(tmp_path / "screens", herald.port)
        shots = Shots(camera, auditor)
        async with chromium(playwright_api) as browser:
            context = await browser.new_context(base_url=herald.base_url)
            await context.grant_permissions(["clipboard-read", "clipboard-write"])
            page = await camera_page(context, camera)
            await sign_in(page, "admin", herald.password)
            await admin_pages(page, shots, garden)
            visitor = await browser.new_context(base_url=herald.base_url)
            await public_page(await camera_page(visitor, camera), shots)
            elsewhere = await browser.new_context()
            await snippet_from_elsewhere(await elsewhere.new_page(), herald.base_url, page)

    camera.copy_for_a_human(HUMAN_COPY)
    # Asked for on purpose: the refused edit (409) and the private list's page (404).
    expected = re.compile(r"/(admin/lists/[0-9a-f-]{36}|l/members): console error: .* (409|404) ")
    problems = [problem for problem in camera.problems if not expected.search(problem)]
    assert problems == [], "\n".join(problems)
    assert camera.foreign_hosts() == set(), camera.requested
    if auditor is not None:
        assert auditor.problems == [], "\n".join(auditor.problems)


class Shots:
    """The camera's screenshots, each page also audited by axe (serious or critical
    violations fail the test) when axe-core is at hand."""

    def __init__(self, camera: Camera, auditor: Auditor | None) -> None:
        self.camera = camera
        self.auditor = auditor

    async def shoot(self, page: Any, name: str) -> None:
        await self.camera.shoot(page, name)
        if self.auditor is not None:
            await self.auditor.audit(page, name)


async def admin_pages(p: Any, camera: Shots, garden: uuid.UUID) -> None:
    await p.goto("/admin/dashboard")
    await p.click("nav.mainnav >> text=Lists")
    await p.wait_for_url("**/admin/lists")
    table = re.sub(r"\s+", " ", await p.text_content("table"))
    assert "Garden Notes garden 9 8" in table  # confirmed, pending
    await camera.shoot(p, "lists")

    await p.click("text=New list")
    await p.wait_for_url("**/admin/lists/new")
    await camera.shoot(p, "list-new")
    await p.fill("#list-name", "Weekly Digest")
    await p.fill("#list-description", "The week in one email.")
    await p.click("main button[type=submit]")
    await p.wait_for_url(re.compile(r".*/admin/lists/[0-9a-f-]{36}$"))
    assert "The list Weekly Digest has been created." in await p.text_content("main")
    snippet = await p.input_value("#snippet")
    assert '<input type="hidden" name="list" value="weekly-digest">' in snippet
    await p.click("button[data-copy]")
    await p.wait_for_selector("[data-copy-status]:has-text('Copied')")
    assert await p.evaluate("navigator.clipboard.readText()") == snippet
    await camera.shoot(p, "list-created")

    # A refused edit shows the form again with what was typed and why.
    await p.fill("#list-slug", "garden")
    await p.click("form.wide button[type=submit]")
    await p.wait_for_selector("text=already exists")
    assert await p.input_value("#list-slug") == "garden"
    await camera.shoot(p, "list-edit-refused")

    # The default list: its slug is read-only, it stays double opt-in, no delete.
    await p.goto("/admin/lists")
    await p.click("table >> text=Newsletter")
    assert await p.get_attribute("#list-slug", "readonly") is not None
    assert await p.locator("input[name=opt_in][type=radio]").count() == 0
    assert await p.locator("text=Delete Newsletter").count() == 0
    await camera.shoot(p, "list-default")

    # The private list: no snippet, a note instead.
    await p.goto("/admin/lists")
    await p.click("text=Members' Briefing")
    assert await p.locator("#snippet").count() == 0
    await camera.shoot(p, "list-private")

    # Deleting a list with members asks first.
    await p.goto(f"/admin/lists/{garden}")
    await camera.shoot(p, "list-garden")
    await p.click("button.danger")
    await p.wait_for_selector("text=25 memberships")
    await camera.shoot(p, "list-delete-confirm")
    await p.click("main button.danger")
    await p.wait_for_url("**/admin/lists")
    assert "The list Garden Notes has been deleted." in await p.text_content("main")


async def public_page(p: Any, camera: Shots) -> None:
    assert (await p.goto("/l/members")).status == 404
    await p.goto("/l/weekly-digest")
    assert await p.text_content("h1") == "Weekly Digest"
    await camera.shoot(p, "list-public")
    await p.fill("#name", "Ada")
    await p.fill("#email", "ada@example.org")
    await p.click("main button[type=submit]")
    await p.wait_for_selector("text=Check your inbox")
    await camera.shoot(p, "list-public-subscribed")


async def snippet_from_elsewhere(p: Any, base_url: str, admin: Any) -> None:
    """The snippet, as pasted into a page of another origin (here an opaque one: the
    browser sends ``Origin: null``, ``Sec-Fetch-Site: cross-site`` and no Herald cookie)."""
    await admin.goto("/admin/lists")
    await admin.click("text=Weekly Digest")
    snippet = await admin.input_value("#snippet")
    await p.set_content(f"<!doctype html><title>Blog</title><h1>My blog</h1>{snippet}")
    await p.fill("input[name=name]", "Grace")
    await p.fill("input[name=email]", "grace@example.org")
    async with p.expect_navigation():
        await p.click("button[type=submit]")
    assert p.url == f"{base_url}/subscriptions"
    assert "Check your inbox" in await p.text_content("h1")
