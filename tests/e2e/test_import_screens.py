"""A CSV import in Chromium: from the subscribers page to the upload, the column mapping
(a confirmed import needs the attestation), the job page following the import live to its
end (``job.progress``/``job.finished`` over /admin/live, no reload), and the error report
downloaded; at 1280 and 375 px, light and dark.

Screenshots go to a folder the test prints, with a copy in /tmp/herald-screens-imports.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import pytest

from herald.core.db import Database
from tests.support.browser import Camera, camera_page, chromium, herald_up, require_browser, sign_in

HUMAN_COPY = Path("/tmp/herald-screens-imports")  # noqa: S108 - for a human to look at
ROWS = 60_000
BAD = {17: "not an address", 4242: "nobody@", 59_998: "x@localhost"}


def source(path: Path) -> Path:
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("E-mail,Full name,City,Sign-up date,Notes\r\n")
        for i in range(ROWS):
            email = BAD.get(i, f"reader{i}@example.org")
            out.write(f'{email},Reader {i},Lyon,2026-0{1 + i % 9}-01,"likes ""cats"", dogs"\r\n')
    return path


@pytest.mark.slow
async def test_an_import_in_a_browser(database_url: str, db: Database, tmp_path: Path) -> None:
    playwright_api = require_browser()
    file = source(tmp_path / "readers.csv")
    async with herald_up(database_url, tmp_path / "up.log", "herald-import-screens-") as herald:
        camera = Camera(tmp_path / "screens", herald.port)
        async with chromium(playwright_api) as browser:
            context = await browser.new_context(base_url=herald.base_url, accept_downloads=True)
            page = await camera_page(context, camera)
            await sign_in(page, "admin", herald.password)
            await walk(page, camera, file, tmp_path)
    camera.copy_for_a_human(HUMAN_COPY)
    assert camera.problems == [], "\n".join(camera.problems)
    assert camera.foreign_hosts() == set(), camera.requested
    async with db.connection() as conn:
        found = await conn.fetchrow(
            "SELECT count(*) AS n, count(*) FILTER (WHERE status = 'confirmed') AS confirmed,"
            " min(attributes::text) AS attributes FROM subscriptions"
        )
    assert (found["n"], found["confirmed"]) == (ROWS - len(BAD), ROWS - len(BAD))
    assert '"city": "Lyon"' in found["attributes"]
    assert '"notes": "likes \\"cats\\", dogs"' in found["attributes"]


async def walk(p: Any, camera: Camera, file: Path, tmp_path: Path) -> None:
    await p.goto("/admin/subscribers")
    await camera.shoot(p, "subscribers-links")
    await p.click("text=Import a CSV")
    await p.wait_for_url("**/admin/subscribers/import")
    await camera.shoot(p, "import-upload")
    await p.set_input_files("#file", str(file))
    await p.click("main form button[type=submit]")
    await p.wait_for_url(re.compile(r".*/admin/subscribers/import/[0-9a-f-]{36}$"))
    assert await p.input_value("#role_0") == "email"
    assert await p.input_value("#role_1") == "name"
    assert await p.input_value("#role_2") == "attribute"
    await camera.shoot(p, "import-mapping")
    await p.select_option("#role_4", "attribute")
    await p.check("input[name=mode][value=confirmed]")
    await p.click("text=Start the import")  # without the attestation: refused
    await p.wait_for_selector("text=confirm that they agreed")
    await camera.shoot(p, "import-mapping-refused")
    await p.check("input[name=mode][value=confirmed]")
    await p.check("input[name=attest]")
    await p.click("text=Start the import")
    await p.wait_for_url(re.compile(r".*/admin/subscribers/import/[0-9a-f-]{36}$"))
    state = p.locator("[data-job-state]")
    first = re.sub(r"\s+", " ", await state.text_content() or "")
    assert "Import finished" not in first, "finished before the page could follow it"
    await camera.shoot(p, "import-running")
    await p.wait_for_function(
        "() => (document.querySelector('[data-job-state]') || {}).textContent"
        ".includes('Import finished')",
        timeout=180_000,
    )
    final = await state.text_content() or ""
    assert f"{ROWS - len(BAD):,} imported" in final
    assert f"{len(BAD)} rejected" in final
    await p.reload()
    await camera.shoot(p, "import-done")
    async with p.expect_download() as download_info:
        await p.click("text=Download the error report")
    download = await download_info.value
    saved = tmp_path / "errors.csv"
    await download.save_as(saved)
    rows = list(csv.reader(io.StringIO(saved.read_text(encoding="utf-8"))))
    assert [r[:2] for r in rows] == [
        ["line", "email"],
        *[[str(i + 2), email] for i, email in sorted(BAD.items())],
    ]
    await p.goto("/admin/subscribers/import")
    await camera.shoot(p, "import-list")
