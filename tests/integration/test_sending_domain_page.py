"""/admin/settings/deliverability: the sending domain's records checked against a stub
DNS server, the records to publish shown to copy; admins only."""

from __future__ import annotations

import html
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from herald.composition.app import create_app
from herald.core.config import Settings
from herald.core.db import Database
from herald.email.dkim import DkimSigner
from tests.support.database import make_settings
from tests.support.dns_stub import StubDns, stub_dns
from tests.support.newsletters import create_admin, log_in

PAGE = "/admin/settings/deliverability"
DOMAIN = "herald.test"
SELECTOR = "herald2026"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RECORD = DkimSigner(SELECTOR, DOMAIN, KEY).record


@pytest.fixture
def dns() -> Iterator[StubDns]:
    with stub_dns(StubDns(empty={DOMAIN})) as running:
        yield running


@pytest.fixture
def settings(database_url: str, dns: StubDns, tmp_path: Path) -> Settings:
    key_file = tmp_path / "dkim.pem"
    key_file.write_bytes(
        KEY.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return make_settings(
        database_url,
        email={
            "provider": "smtp",
            "sender": f"Herald News <news@{DOMAIN}>",
            "smtp": {"host": "smtp.herald.test"},
            "dkim": {"selector": SELECTOR, "private_key_file": str(key_file)},
        },
        dns={"nameservers": dns.nameserver, "timeout_seconds": 1},
    )


async def test_nothing_published_shows_the_three_records_to_add(
    admin_client: httpx.AsyncClient,
) -> None:
    response = await admin_client.get(PAGE)

    assert response.status_code == 200
    text = html.unescape(response.text)
    assert text.count(">Missing</span>") >= 3
    assert f'value="{SELECTOR}._domainkey.{DOMAIN}"' in text
    assert RECORD in text  # the DKIM public key, to copy
    assert "v=spf1 a mx a:smtp.herald.test ~all" in text
    assert f'value="_dmarc.{DOMAIN}"' in text
    assert 'data-copy="fix-dkim-value"' in text
    assert "/static/copy.js" in text


async def test_a_complete_set_up_is_ok_and_shows_what_was_found(
    admin_client: httpx.AsyncClient, dns: StubDns
) -> None:
    dns.txt.update(
        {
            DOMAIN: ["v=spf1 a:smtp.herald.test -all"],
            f"{SELECTOR}._domainkey.{DOMAIN}": [RECORD],
            f"_dmarc.{DOMAIN}": ["v=DMARC1; p=reject; rua=mailto:d@herald.test"],
        }
    )

    response = await admin_client.get(PAGE)

    text = html.unescape(response.text)
    assert "Missing</span>" not in text
    assert "Error</span>" not in text
    assert "<pre>v=DMARC1; p=reject; rua=mailto:d@herald.test</pre>" in text
    assert "Record to publish" not in text


async def test_a_record_that_displays_markup_is_escaped(
    admin_client: httpx.AsyncClient, dns: StubDns
) -> None:
    dns.txt[DOMAIN] = ["v=spf1 <script>alert(1)</script> -all"]

    response = await admin_client.get(PAGE)

    assert "<script>alert(1)</script>" not in response.text
    assert "&lt;script&gt;" in response.text


async def test_dns_that_does_not_answer_still_gives_the_page(
    admin_client: httpx.AsyncClient, dns: StubDns
) -> None:
    dns.silent |= {DOMAIN, f"_dmarc.{DOMAIN}", f"{SELECTOR}._domainkey.{DOMAIN}"}

    response = await admin_client.get(PAGE)

    assert response.status_code == 200
    assert response.text.count(">Unknown</span>") >= 3
    assert "no answer in time" in response.text


async def test_settings_link_to_it(admin_client: httpx.AsyncClient) -> None:
    response = await admin_client.get("/admin/settings")

    assert f'href="{PAGE}"' in response.text


async def test_the_private_key_is_never_shown(
    database_url: str, dns: StubDns, db: Database
) -> None:
    """The key given as text (HERALD_EMAIL__DKIM__PRIVATE_KEY) appears on no settings page."""
    text = KEY.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    settings = make_settings(
        database_url,
        email={
            "provider": "smtp",
            "sender": f"news@{DOMAIN}",
            "smtp": {"host": "smtp.herald.test"},
            "dkim": {"selector": SELECTOR, "private_key": text},
        },
        dns={"nameservers": dns.nameserver, "timeout_seconds": 1},
    )
    await create_admin(db, settings)
    app = create_app(settings, db=db)
    pages = ["/admin/settings", "/admin/settings/sender", "/admin/settings/configuration", PAGE]
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://herald.test") as c:
            await log_in(c)
            responses = [await c.get(path) for path in pages]
    # Whole 64-character lines (a short last line could be anywhere in a page), less those
    # of the modulus: PKCS#1's and the public record's base64 share its alignment.
    key_lines = [line for line in text.splitlines() if len(line) == 64 and line not in RECORD]
    assert len(key_lines) > 15
    for path, response in zip(pages, responses, strict=True):
        assert response.status_code == 200, path
        assert not any(line in response.text for line in key_lines), path
    assert RECORD in html.unescape(responses[-1].text)  # the public key is shown


async def test_editors_and_strangers_are_kept_out(
    client: httpx.AsyncClient, editor: httpx.AsyncClient
) -> None:
    assert (await client.get(PAGE)).status_code == 303  # anonymous → /login
    assert (await editor.get(PAGE)).status_code == 403
