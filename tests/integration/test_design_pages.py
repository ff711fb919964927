"""Issue 14 item 4: the branding settings page, the logo route and the templates page."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator

import httpx
import pytest

from herald.core.config import Settings
from herald.core.db import Database
from herald.design.logos import sha256_of
from herald.email.layout import default_source
from tests.integration.test_issue_pages import fetchval, flashes, token
from tests.unit.design.test_logos import gif, png

BRANDING = "/admin/settings/branding"
TEMPLATES = "/admin/templates"
CUSTOM = default_source().replace("{{ content }}", "<p>Custom top</p>{{ content }}")


async def save_branding(client: httpx.AsyncClient, **fields: str) -> httpx.Response:
    data = {
        "csrf_token": await token(client, BRANDING),
        "name": "Acme Weekly",
        "accent": "#aa3300",
        "accent_picker": "#3451c7",
        "accent_shown": "#3451c7",
        "footer_address": "1 Main St",
        **fields,
    }
    return await client.post(BRANDING, data=data)


async def upload(
    client: httpx.AsyncClient, data: bytes, filename: str = "logo.png", **headers: str
) -> httpx.Response:
    files = {"logo": (filename, data, "image/png")}
    return await client.post(
        f"{BRANDING}/logo",
        data={"csrf_token": await token(client, BRANDING)},
        files=files,
        headers=headers,
    )


async def test_the_branding_page_saves_values_over_the_defaults(
    admin_client: httpx.AsyncClient,
) -> None:
    page = await admin_client.get(BRANDING)
    assert page.status_code == 200
    assert "Configured default" in page.text
    assert 'src="/admin/settings/branding/preview"' in page.text
    assert "frame-src 'self'" in page.headers["content-security-policy"]

    refused = await save_branding(admin_client, accent="#12", name="Typed name")
    assert refused.status_code == 400
    assert "hex colour" in html.unescape(refused.text)
    assert 'value="Typed name"' in refused.text  # what was typed stays

    saved = await save_branding(admin_client)
    assert saved.status_code == 303
    shown = await admin_client.get(BRANDING)
    assert ("flash", "The branding has been saved: emails use it from now on.") in flashes(shown)
    assert 'value="Acme Weekly"' in shown.text
    assert shown.text.count("Set here") == 3
    preview = await admin_client.get(f"{BRANDING}/preview")
    assert preview.status_code == 200
    assert "Acme Weekly" in preview.text
    assert "1 Main St" in preview.text
    assert "sandbox" in preview.headers["content-security-policy"]
    assert "frame-ancestors 'self'" in preview.headers["content-security-policy"]

    # Without JavaScript, a picked colour counts when the hex field was left as shown.
    picked = await save_branding(
        admin_client, accent="#aa3300", accent_shown="#aa3300", accent_picker="#00ff00"
    )
    assert picked.status_code == 303
    assert 'value="#00ff00"' in (await admin_client.get(BRANDING)).text

    reset = await admin_client.post(
        f"{BRANDING}/reset",
        data={"csrf_token": await token(admin_client, BRANDING), "field": "name"},
    )
    assert reset.status_code == 303
    assert 'value="Herald newsletter"' in (await admin_client.get(BRANDING)).text

    unsaved = await admin_client.post(
        f"{BRANDING}/preview",
        data={
            "csrf_token": await token(admin_client, BRANDING),
            "name": "Not saved",
            "accent": "#112233",
            "footer_address": "",
        },
    )
    assert unsaved.status_code == 200
    assert "Not saved" in unsaved.text
    bad = await admin_client.post(
        f"{BRANDING}/preview",
        data={"csrf_token": await token(admin_client, BRANDING), "name": "x", "accent": "red"},
    )
    assert bad.status_code == 400
    assert "hex colour" in html.unescape(bad.text)


async def test_only_admins_change_the_branding(
    admin_client: httpx.AsyncClient, client: httpx.AsyncClient, settings: Settings, db: Database
) -> None:
    anonymous = httpx.AsyncClient(transport=client._transport, base_url="http://herald.test")
    assert (await anonymous.get(BRANDING)).headers["location"] == "/login"
    no_token = await admin_client.post(BRANDING, data={"name": "x", "accent": "#000000"})
    assert no_token.status_code == 403


async def test_a_logo_is_uploaded_and_served_content_addressed_with_caching(
    admin_client: httpx.AsyncClient, db: Database
) -> None:
    answer = await upload(admin_client, png())
    assert answer.status_code == 303, answer.text
    page = await admin_client.get(BRANDING)
    path = f"/brand/logo/{sha256_of(png())}.png"
    assert f'src="{path}"' in page.text
    assert "320 \u00d7 80 px" in page.text

    served = await admin_client.get(path, headers={"Cookie": ""})
    assert served.status_code == 200
    assert served.content == png()
    assert served.headers["content-type"] == "image/png"
    assert served.headers["cache-control"] == "public, max-age=31536000, immutable"
    etag = served.headers["etag"]
    assert etag == f'"{sha256_of(png())}"'
    head = await admin_client.head(path)
    assert (head.status_code, head.headers["etag"]) == (200, etag)
    again = await admin_client.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert (await admin_client.get(path, headers={"If-None-Match": '"other"'})).status_code == 200
    for missing in (
        path.replace(".png", ".gif"),
        "/brand/logo/" + "0" * 64 + ".png",
        "/brand/logo/x",
    ):
        assert (await admin_client.get(missing)).status_code == 404

    # A new logo: the email uses it; the old one is still served.
    assert (await upload(admin_client, gif(), "new.gif")).status_code == 303
    preview = await admin_client.get(f"{BRANDING}/preview")
    assert f"http://herald.test/brand/logo/{sha256_of(gif())}.gif" in preview.text
    assert (await admin_client.get(path)).status_code == 200

    removed = await admin_client.post(
        f"{BRANDING}/logo/remove", data={"csrf_token": await token(admin_client, BRANDING)}
    )
    assert removed.status_code == 303
    assert "/brand/logo/" not in (await admin_client.get(f"{BRANDING}/preview")).text
    assert await fetchval(db, "SELECT count(*) FROM email_logos") == 2


@pytest.mark.parametrize(
    ("data", "filename", "message"),
    [
        (b"", "logo.png", "the file is empty"),
        (b"plain text, not a picture", "logo.png", "not an image Herald accepts"),
        (
            b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
            "l.svg",
            "SVG",
        ),
        (png()[:60], "logo.png", "not a complete PNG"),
        (png(8000, 20), "wide.png", "8000 by 20 pixels"),
        (png(padding=520 * 1024), "big.png", "larger than 512 KB"),
    ],
)
async def test_a_bad_logo_is_a_400_naming_the_problem(
    admin_client: httpx.AsyncClient, db: Database, data: bytes, filename: str, message: str
) -> None:
    refused = await upload(admin_client, data, filename)
    assert refused.status_code == 400
    assert message in html.unescape(refused.text)
    assert 'role="alert" id="logo-error"' in refused.text
    assert await fetchval(db, "SELECT count(*) FROM email_logos") == 0


async def test_a_huge_upload_is_refused_before_it_is_read(admin_client: httpx.AsyncClient) -> None:
    csrf = await token(admin_client, BRANDING)
    declared = await admin_client.post(
        f"{BRANDING}/logo",
        content=b"x" * 100,
        headers={
            "Content-Type": "multipart/form-data; boundary=b",
            "Content-Length": str(50 * 1024 * 1024),
        },
    )
    assert declared.status_code == 413

    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        yield f'--b\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n{csrf}\r\n'.encode()
        yield b'--b\r\nContent-Disposition: form-data; name="logo"; filename="a.png"\r\n\r\n'
        while sent < 64 * 1024 * 1024:
            sent += 64 * 1024
            yield b"\x00" * 64 * 1024

    streamed = await admin_client.post(
        f"{BRANDING}/logo",
        content=endless(),
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert streamed.status_code == 413
    assert sent < 2 * 1024 * 1024  # stopped at the limit, not after 64 MiB
    plain = await admin_client.post(f"{BRANDING}/logo", data={"csrf_token": csrf})
    assert plain.status_code == 415


async def test_editors_copy_edit_activate_and_delete_layouts(
    admin_client: httpx.AsyncClient, db: Database
) -> None:
    page = await admin_client.get(TEMPLATES)
    assert page.status_code == 200
    assert "Herald default" in page.text
    assert "Used for all emails" in page.text
    preview = await admin_client.get(f"{TEMPLATES}/default/preview")
    assert preview.status_code == 200
    assert "Sample Subscriber" in preview.text
    assert "sandbox" in preview.headers["content-security-policy"]
    assert preview.headers["x-frame-options"] == "SAMEORIGIN"

    copied = await admin_client.post(
        f"{TEMPLATES}/default/copy", data={"csrf_token": await token(admin_client, TEMPLATES)}
    )
    assert copied.status_code == 303
    edit = copied.headers["location"]
    found = re.fullmatch(r"/admin/templates/([0-9a-f-]{36})/edit", edit)
    assert found
    layout_id = found.group(1)
    editor = await admin_client.get(edit)
    assert 'name="source"' in editor.text
    assert "Copy of Herald default" in editor.text

    # A layout that lacks the unsubscribe link, or does not compile: refused, text kept.
    typed = re.sub(r"\{\{#unsubscribe_url\}\}.*?\{\{/unsubscribe_url\}\}", "", default_source())
    typed += "<!-- my edit -->"
    refused = await admin_client.post(
        edit, data={"csrf_token": await token(admin_client, edit), "name": "Mine", "source": typed}
    )
    assert refused.status_code == 400
    assert "no {{ unsubscribe_url }} placeholder" in html.unescape(refused.text)
    assert "&lt;!-- my edit --&gt;" in refused.text
    assert 'value="Mine"' in refused.text
    broken = await admin_client.post(
        edit,
        data={
            "csrf_token": await token(admin_client, edit),
            "name": "Mine",
            "source": "<mjml><mj-body><mj-text>{{ content }} {{ unsubscribe_url }}</mj-body>",
        },
    )
    assert broken.status_code == 400
    assert "does not compile" in html.unescape(broken.text)
    framed = await admin_client.post(
        f"{TEMPLATES}/preview",
        data={"csrf_token": await token(admin_client, edit), "source": typed},
    )
    assert framed.status_code == 400
    assert "unsubscribe_url" in html.unescape(framed.text)

    saved = await admin_client.post(
        edit, data={"csrf_token": await token(admin_client, edit), "name": "Mine", "source": CUSTOM}
    )
    assert saved.status_code == 303
    assert "Custom top" in (await admin_client.get(f"{TEMPLATES}/{layout_id}/preview")).text

    activated = await admin_client.post(
        f"{TEMPLATES}/{layout_id}/activate",
        data={"csrf_token": await token(admin_client, TEMPLATES)},
    )
    assert activated.status_code == 303
    listed = await admin_client.get(TEMPLATES)
    assert ("flash", "Every email now uses the layout “Mine”.") in flashes(listed)
    assert "Custom top" in (await admin_client.get(f"{BRANDING}/preview")).text

    in_use = await admin_client.post(
        f"{TEMPLATES}/{layout_id}/delete", data={"csrf_token": await token(admin_client, TEMPLATES)}
    )
    assert in_use.status_code == 303
    shown = await admin_client.get(TEMPLATES)
    assert any("used for all emails" in text for _, text in flashes(shown))
    builtin = await admin_client.post(
        f"{TEMPLATES}/default/edit",
        data={"csrf_token": await token(admin_client, TEMPLATES), "name": "x", "source": CUSTOM},
    )
    assert builtin.status_code == 400

    await admin_client.post(
        f"{TEMPLATES}/default/activate", data={"csrf_token": await token(admin_client, TEMPLATES)}
    )
    deleted = await admin_client.post(
        f"{TEMPLATES}/{layout_id}/delete", data={"csrf_token": await token(admin_client, TEMPLATES)}
    )
    assert deleted.status_code == 303
    assert (await admin_client.get(edit)).status_code == 404
    assert await fetchval(db, "SELECT count(*) FROM email_layouts") == 0
    assert (await admin_client.get(f"{TEMPLATES}/nope/edit")).status_code == 404


async def test_editors_reach_the_templates_but_not_the_branding(
    editor: httpx.AsyncClient,
) -> None:
    page = await editor.get(TEMPLATES)
    assert page.status_code == 200
    assert "Settings → Branding" not in page.text
    assert 'href="/admin/templates"' in page.text  # in the main navigation
    assert (await editor.get(BRANDING)).status_code == 403
    copied = await editor.post(
        f"{TEMPLATES}/default/copy", data={"csrf_token": await token(editor, TEMPLATES)}
    )
    assert copied.status_code == 303
