"""The segment builder in Chromium: the empty list, building a segment row by row with
plain form submits (add, remove, preview, save), a refused condition, a nested filter
edited as JSON, the saved list; and a subscriber's attributes. At desktop and phone widths,
light and dark.

Screenshots go to a folder the test prints, with a copy in /tmp/herald-screens-segments.
The camera of tests/support/browser.py checks each page: no CSP violation, console error,
foreign host, or anything wider than a phone; and axe-core (when the npm registry gives
it, as in tests/e2e/test_accessibility.py) finds no serious or critical violation.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from herald.core.db import Database
from tests.e2e.test_accessibility import Auditor
from tests.support.axe import AxeUnavailable, axe_source
from tests.support.browser import Camera, camera_page, chromium, herald_up, require_browser, sign_in

HUMAN_COPY = Path("/tmp/herald-screens-segments")  # noqa: S108 - for a human to look at
CITIES = ["Paris", "Lyon", "Berlin", "Paris", "Madrid"]


async def seed(db: Database) -> uuid.UUID:
    ids = [uuid.uuid4() for _ in range(30)]
    async with db.connection() as conn:
        await conn.executemany(
            "INSERT INTO subscriptions (id, email, name, status, attributes)"
            " VALUES ($1, $2, $3, $4, $5::jsonb)",
            [
                (
                    i,
                    f"reader{n}@{('example.org', 'mail.example.com')[n % 2]}",
                    f"Reader {n}",
                    ("confirmed", "pending_confirmation")[n % 5 == 4],
                    json.dumps({"city": CITIES[n % 5], "age": 20 + n, "vip": n % 3 == 0}),
                )
                for n, i in enumerate(ids)
            ],
        )
    return ids[0]


@dataclass
class Lens:
    """The camera, and axe when it could be fetched."""

    camera: Camera
    auditor: Auditor | None

    async def shoot(self, page: Any, name: str) -> None:
        await self.camera.shoot(page, name)
        if self.auditor is not None:
            await self.auditor.audit(page, name)


@pytest.mark.slow
async def test_segment_pages_in_a_browser(database_url: str, db: Database, tmp_path: Path) -> None:
    playwright_api = require_browser()
    try:
        auditor: Auditor | None = Auditor(axe_source())
    except AxeUnavailable:
        auditor = None
    reader = await seed(db)
    async with herald_up(database_url, tmp_path / "up.log", "herald-segment-screens-") as herald:
        camera = Camera(tmp_path / "screens", herald.port)
        async with chromium(playwright_api) as browser:
            context = await browser.new_context(base_url=herald.base_url)
            page = await camera_page(context, camera)
            await sign_in(page, "admin", herald.password)
            lens = Lens(camera, auditor)
            await builder(page, lens)
            await attributes(page, lens, reader)
    camera.copy_for_a_human(HUMAN_COPY)
    # Asked for on purpose: the refused condition (400).
    expected = re.compile(r"/admin/segments/new: console error: .* 400 ")
    problems = [problem for problem in camera.problems if not expected.search(problem)]
    assert problems == [], "\n".join(problems)
    assert camera.foreign_hosts() == set(), camera.requested
    if auditor is not None:
        assert auditor.problems == [], "\n".join(auditor.problems)


async def builder(p: Any, lens: Lens) -> None:
    await p.goto("/admin/dashboard")
    await p.click("nav.mainnav >> text=Segments")
    await p.wait_for_url("**/admin/segments")
    await lens.shoot(p, "segments-empty")

    await p.click("text=New segment")
    await p.wait_for_url("**/admin/segments/new")
    await p.fill("#name", "Confirmed Parisians over 30")
    await p.select_option("#new_field", "attribute")
    await p.click("button[value=add]")
    await p.fill("#key_1", "city")
    await p.fill("#value_1", "Paris")
    await p.select_option("#new_field", "attribute")
    await p.click("button[value=add]")
    await p.fill("#key_2", "age")
    await p.select_option("#op_2", "gt")
    await p.select_option("#type_2", "number")
    await p.fill("#value_2", "thirty")
    await p.click("main button[value=preview]:not(.visually-hidden)")
    await p.wait_for_selector("text=is not a number")
    await lens.shoot(p, "segment-refused")

    await p.fill("#value_2", "30")
    await p.select_option("#new_field", "email_domain")
    await p.click("button[value=add]")
    await p.click("button[aria-label='Remove condition 4']")
    await p.press("#value_2", "Enter")  # Enter previews: it never removes a row
    await p.wait_for_selector("text=Matches 7 subscribers")
    assert await p.locator("li.condition-row").count() == 3
    await lens.shoot(p, "segment-preview")

    await p.click("button[value=save]")
    await p.wait_for_url(re.compile(r".*/admin/segments/[0-9a-f-]{36}$"))
    assert "The segment has been saved." in await p.text_content("main")
    await lens.shoot(p, "segment-saved")
    await p.click("text=Every subscriber of this segment")
    await p.wait_for_url(re.compile(r".*/subscribers$"))
    assert await p.locator("tbody tr").count() == 7
    await lens.shoot(p, "segment-subscribers")

    await p.goto("/admin/segments/new")
    await p.fill("#name", "Paris or VIPs on example.org")
    nested = {
        "any": [
            {"attribute": "city", "op": "eq", "value": "Paris"},
            {
                "all": [
                    {"attribute": "vip", "op": "eq", "type": "boolean", "value": True},
                    {"email_domain": "example.org"},
                ]
            },
        ]
    }
    await p.click("summary:has-text('Filter as JSON')")
    await p.fill("#json_text", json.dumps(nested, indent=2))
    await p.click("button[value=json]")
    await p.wait_for_selector("text=nested groups")
    await lens.shoot(p, "segment-json")
    await p.click("button[value=save]")
    await p.wait_for_url(re.compile(r".*/admin/segments/[0-9a-f-]{36}$"))
    await p.goto("/admin/segments")
    assert await p.locator("table tbody tr").count() == 2
    await lens.shoot(p, "segments")


async def attributes(p: Any, lens: Lens, reader: uuid.UUID) -> None:
    await p.goto(f"/admin/subscribers/{reader}")
    assert "Paris" in await p.input_value("#attributes")
    await p.fill("#attributes", '{"city": "Lyon", "plan": "pro"}')
    await p.click("text=Save attributes")
    await p.wait_for_selector("text=The attributes have been saved.")
    await lens.shoot(p, "subscriber-attributes")
