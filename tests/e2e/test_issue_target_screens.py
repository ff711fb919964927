"""The editor's "Send to" fieldset in Chromium: a new issue has the default list checked;
no list checked is refused with the form as typed and the fieldset marked; two lists and
a segment are saved, shown on the issue page and counted on the publish confirmation
(each reader once); the same choice works with JavaScript off. At 1280 and 375 px,
light and dark.

Screenshots go to a folder the test prints, with a copy in /tmp/herald-screens-targeting.
The camera of tests/support/browser.py checks each page: no CSP violation, console error,
foreign host, or anything wider than a phone.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from herald.core.db import Database
from tests.support.browser import Camera, camera_page, chromium, herald_up, require_browser, sign_in

HUMAN_COPY = Path("/tmp/herald-screens-targeting")  # noqa: S108 - for a human to look at
ISSUE_URL = re.compile(r".*/admin/issues/[0-9a-f-]{36}$")
PARIS = {"attribute": "city", "op": "eq", "type": "string", "value": "Paris"}


async def seed(db: Database) -> None:
    """Two lists sharing 4 of their confirmed readers, half of them in Paris, a segment."""
    ids = [uuid.uuid4() for _ in range(30)]
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO lists (slug, name) VALUES ('garden', 'Garden Notes'),"
            " ('members', 'Members'' Briefing'), ('product-updates', 'Product updates')"
        )
        await conn.executemany(
            "INSERT INTO subscriptions (id, email, name, status, attributes)"
            " VALUES ($1, $2, $3, 'confirmed', $4::jsonb)",
            [
                (i, f"reader{n}@example.org", f"Reader {n}", json.dumps({"city": "Paris"}))
                if n % 2 == 0
                else (i, f"reader{n}@example.org", f"Reader {n}", "{}")
                for n, i in enumerate(ids)
            ],
        )
        await conn.executemany(
            "INSERT INTO list_memberships (list_id, subscriber_id, status, source)"
            " SELECT id, $2, 'confirmed', 'test' FROM lists WHERE slug = $1",
            [("garden", i) for i in ids[:10]] + [("members", i) for i in ids[6:14]],
        )
        await conn.execute(
            "INSERT INTO segments (name, filter) VALUES ('Paris', $1::jsonb)", json.dumps(PARIS)
        )


@pytest.mark.slow
async def test_the_send_to_fieldset_in_a_browser(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    playwright_api = require_browser()
    await seed(db)
    async with herald_up(database_url, tmp_path / "up.log", "herald-target-screens-") as herald:
        camera = Camera(tmp_path / "screens", herald.port)
        async with chromium(playwright_api) as browser:
            page = await camera_page(await browser.new_context(base_url=herald.base_url), camera)
            await sign_in(page, "admin", herald.password)
            await with_script(page, camera)
            no_script = await browser.new_context(
                base_url=herald.base_url, java_script_enabled=False
            )
            plain = await camera_page(no_script, camera)
            await sign_in(plain, "admin", herald.password)
            await without_script(plain)
    camera.copy_for_a_human(HUMAN_COPY)
    assert camera.problems == [], "\n".join(camera.problems)
    assert camera.foreign_hosts() == set(), camera.requested


async def checked(p: Any) -> list[str]:
    values: list[str] = await p.eval_on_selector_all(
        "#send-to input[name=lists]:checked", "els => els.map(e => e.value)"
    )
    return values


async def with_script(p: Any, camera: Camera) -> None:
    await p.goto("/admin/issues/new")
    assert await checked(p) == ["default"], "a new issue goes to the default list"
    assert await p.input_value("#segment_id") == ""
    await camera.shoot(p, "editor-send-to")

    await p.fill("#title", "Spring sowing")
    await p.fill("#markdown", "Hello {{ subscriber.name }} in {{ subscriber.attributes.city }}")
    await p.uncheck("#send-to input[value=default]")
    await p.click("main button[type=submit]:has-text('Save draft')")
    await p.wait_for_selector("#send-to-error")
    assert "choose at least one list" in await p.text_content("#send-to-error")
    assert await p.get_attribute("#send-to", "aria-invalid") == "true"
    assert await p.input_value("#title") == "Spring sowing", "what was typed is kept"
    await camera.shoot(p, "editor-send-to-refused")

    await p.check("#send-to input[value=garden]")
    await p.check("#send-to input[value=members]")
    await p.select_option("#segment_id", label="Segment: Paris")
    await p.click("main button[type=submit]:has-text('Save draft')")
    await p.wait_for_url(ISSUE_URL)
    target = await p.text_content("#issue-target")
    assert "Send to: Garden Notes and Members' Briefing, segment “Paris”" in target
    await camera.shoot(p, "issue-target")

    await p.click("text=Edit")
    assert sorted(await checked(p)) == ["garden", "members"]
    assert await p.input_value("#segment_id") != ""
    await p.goto(p.url.removesuffix("/edit"))
    await p.click("#publish")
    # Garden has readers 0-9, Members 6-13: 14 readers, the even ones are in Paris.
    assert "It goes to 7 confirmed subscribers" in await p.text_content("#publish-count")
    await camera.shoot(p, "publish-confirm-target")
    await p.click("#confirm-publish")
    await p.wait_for_url(ISSUE_URL)
    assert "Sent to: Garden Notes" in await p.text_content("#issue-target")
    await p.goto(p.url + "/edit")  # a published issue's target is frozen with its content
    await p.wait_for_url(ISSUE_URL)
    assert "it can no longer be changed" in await p.text_content("main")
    assert await p.locator("#send-to").count() == 0


async def without_script(p: Any) -> None:
    await p.goto("/admin/issues/new")
    await p.fill("#title", "Product news")
    await p.fill("#markdown", "Hello")
    await p.uncheck("#send-to input[value=default]")
    await p.check("#send-to input[value=product-updates]")
    await p.click("main button[type=submit]:has-text('Save draft')")
    await p.wait_for_url(ISSUE_URL)
    assert "Send to: Product updates" in await p.text_content("#issue-target")
