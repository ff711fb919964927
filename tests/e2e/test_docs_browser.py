"""A real browser renders /docs (issue 8 item 10): Swagger UI from Herald's own /static,
under Herald's CSP, with no request to any other host and no CSP violation.

Uses the Chromium set-up of tests/support/browser.py (Debian's package, `make browser`);
skipped without it on a developer's machine, failed without it in CI.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.e2e.test_newcomer import wait_ready
from tests.support.browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    RECORD_VIOLATIONS,
    require_browser,
)
from tests.support.database import free_port
from tests.support.processes import herald_env, herald_process, wait_exit
from tests.support.tmp import public_tmpdir


@pytest.mark.slow
async def test_docs_renders_the_json_api_in_a_browser(database_url: str, tmp_path: Path) -> None:
    playwright_api = require_browser()
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = herald_env(
        HERALD_DATA_DIR=str(public_tmpdir("herald-docs-")),
        HERALD_DATABASE_URL=database_url,
        HERALD_PORT=str(port),
    )
    log_path = tmp_path / "serve.log"
    async with herald_process("serve", env=env, log_path=log_path) as serve:
        await wait_ready(base_url)
        async with playwright_api.async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
            try:
                context = await browser.new_context(base_url=base_url)
                await look_at_the_docs(context, port)
            finally:
                await browser.close()
        serve.send_signal(signal.SIGTERM)
        assert await wait_exit(serve, 60) == 0, log_path.read_text()


async def look_at_the_docs(context: Any, port: int) -> None:
    await context.add_init_script(RECORD_VIOLATIONS)
    requested: list[str] = []
    context.on("request", lambda request: requested.append(request.url))
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    response = await page.goto("/docs")
    assert response is not None
    assert response.status == 200
    # Swagger UI has fetched /openapi.json and drawn one block per operation.
    operations = page.locator(".opblock-summary-path")
    await operations.first.wait_for(state="visible", timeout=20_000)
    shown = set(await operations.all_inner_texts())
    assert {
        "/api/v1/me",
        "/api/v1/auth/token",
        "/api/v1/api-keys",
        "/api/v1/subscribers",
        "/api/v1/issues/{issue_id}/publish",
        "/api/v1/users",
    } <= {path.replace("\u200b", "").strip() for path in shown}, shown
    assert all(path.replace("\u200b", "").startswith("/api/v1/") for path in shown), shown
    await page.locator("text=Authorize").first.wait_for(state="visible")
    assert await page.evaluate("window.__cspViolations") == []
    assert errors == []
    hosts = {urlsplit(url).netloc for url in requested if not url.startswith("data:")}
    assert hosts == {f"127.0.0.1:{port}"}, requested
