"""Settings → Deliverability in a real browser, on a real ``herald up`` whose DNS is a stub
on 127.0.0.1 (HERALD_DNS__NAMESERVERS): first a half set-up domain (SPF found, DKIM key
not published, DMARC only monitoring), then a complete one. Each state is screenshotted
at 1280 and 375 px, light and dark (a copy in /tmp/herald-screens-h5 for a human), with
the camera's checks (no CSP violation, console error, foreign request or overflow) and
axe-core's; the copy button copies the DKIM record."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from herald.core.db import Database
from herald.email.dkim import DkimSigner
from tests.e2e.test_accessibility import Auditor
from tests.support.browser import (
    Camera,
    camera_page,
    chromium,
    herald_up,
    require_browser,
    sign_in,
)
from tests.support.dns_stub import StubDns, stub_dns

HUMAN_COPY = Path("/tmp/herald-screens-h5")  # noqa: S108 - for a human to look at
PAGE = "/admin/settings/deliverability"
DOMAIN = "herald-demo.org"
SELECTOR = "herald2026"


@pytest.mark.slow
async def test_the_deliverability_page_in_a_browser(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    playwright_api = require_browser()
    auditor = Auditor.required()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / "dkim.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    record = DkimSigner(SELECTOR, DOMAIN, key).record
    half = StubDns(
        txt={
            DOMAIN: ["v=spf1 a mx include:spf.mtasv.net ~all"],
            f"_dmarc.{DOMAIN}": ["v=DMARC1; p=none"],
        }
    )
    with stub_dns(half) as dns:
        settings = {
            "HERALD_EMAIL__PROVIDER": "smtp",
            "HERALD_EMAIL__SENDER": f"Herald Demo <news@{DOMAIN}>",
            "HERALD_EMAIL__SMTP__HOST": "127.0.0.1",
            "HERALD_EMAIL__SMTP__TLS": "none",
            "HERALD_EMAIL__DKIM__SELECTOR": SELECTOR,
            "HERALD_EMAIL__DKIM__PRIVATE_KEY_FILE": str(key_file),
            "HERALD_DNS__NAMESERVERS": dns.nameserver,
            "HERALD_DNS__TIMEOUT_SECONDS": "2",
        }
        async with herald_up(database_url, tmp_path / "up.log", "herald-h5-", **settings) as up:
            camera = Camera(tmp_path / "screens", up.port)
            async with chromium(playwright_api) as browser:
                context = await browser.new_context(
                    base_url=up.base_url, permissions=["clipboard-read", "clipboard-write"]
                )
                page = await camera_page(context, camera)
                await sign_in(page, "admin", up.password)
                await page.goto("/admin/settings")
                await page.click(f"main a[href='{PAGE}']")
                await page.wait_for_url(f"**{PAGE}")
                assert await page.locator("#fix-dkim-value").input_value() == record
                await camera.shoot(page, "deliverability-half-set-up")
                await auditor.audit(page, "deliverability-half-set-up")
                await page.click("button[data-copy='fix-dkim-value']")
                await page.wait_for_selector("text=Copied.")

                dns.txt[f"{SELECTOR}._domainkey.{DOMAIN}"] = [record]
                dns.txt[f"_dmarc.{DOMAIN}"] = [f"v=DMARC1; p=reject; rua=mailto:d@{DOMAIN}"]
                await page.click("text=Check again")
                await page.wait_for_selector("#check-dmarc >> text=OK")
                assert await page.locator("textarea").count() == 0
                await camera.shoot(page, "deliverability-complete")
                await auditor.audit(page, "deliverability-complete")

    camera.copy_for_a_human(HUMAN_COPY)
    assert camera.problems == [], "\n".join(camera.problems)
    assert camera.foreign_hosts() == set(), camera.requested
    assert auditor.problems == [], "\n".join(auditor.problems)
