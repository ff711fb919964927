"""``/admin/webhooks``: add an endpoint (the secret shown once), a refused URL shown again
with what was typed, an endpoint's failure view with replay, the notice of an endpoint
Herald disabled and enabling it again, a new secret, delete; admins only."""

from __future__ import annotations

import html
import re

import httpx

from herald.auth.domain import Role
from herald.auth.service import AuthService
from herald.core.config import Settings
from herald.core.db import Database
from herald.webhooks.sender import WebhookSender
from tests.support.auth import fast_passwords
from tests.support.newsletters import CSRF, PASSWORD, log_in
from tests.support.webhook_receiver import receiver

SECRET = re.compile(r'<code class="secret" id="webhook-secret">(whsec_[A-Za-z0-9+/=]+)</code>')


async def csrf_of(client: httpx.AsyncClient, url: str = "/admin/webhooks") -> str:
    page = await client.get(url)
    assert page.status_code == 200, page.text
    found = CSRF.search(page.text)
    assert found
    return found.group(1)


async def test_add_fail_disable_enable_replay_delete(
    admin_client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    empty = await admin_client.get("/admin/webhooks")
    assert "No webhook endpoints yet." in empty.text
    csrf = await csrf_of(admin_client)

    refused = await admin_client.post(
        "/admin/webhooks",
        data={
            "csrf_token": csrf,
            "url": "ftp://x.example/",
            "description": "Kept",
            "enabled": "on",
        },
    )
    assert refused.status_code == 400
    assert "The URL must start with https://" in html.unescape(refused.text)
    assert 'value="Kept"' in refused.text  # what was typed is shown again

    async with receiver() as hook:
        created = await admin_client.post(
            "/admin/webhooks",
            data={
                "csrf_token": csrf,
                "url": hook.url,
                "description": "CRM",
                "event_types": ["subscriber.created", "subscriber.erased"],
                "enabled": "on",
            },
        )
        assert created.status_code == 201, created.text
        secret = SECRET.search(created.text)
        assert secret
        hook.secret = secret.group(1)
        endpoint_url = re.search(r'action="(/admin/webhooks/[0-9a-f-]{36})"', created.text)
        assert endpoint_url
        url = endpoint_url.group(1)
        again = await admin_client.get(url)
        assert hook.secret not in again.text  # shown once

        async with db.connection() as conn:
            for n in range(2):
                await conn.execute(
                    "INSERT INTO subscriptions (id, email, name, status) VALUES"
                    " (gen_random_uuid(), $1, 'R', 'pending_confirmation')",
                    f"r{n}@example.com",
                )
        hook.default = 500
        failing = settings.webhooks.model_copy(
            update={"max_attempts": 1, "disable_after_hours": 0, "disable_after_failures": 2}
        )
        sender = WebhookSender(db, failing)
        try:
            await sender.turn()
        finally:
            await sender.aclose()
        assert len(hook.verified()) == 2

        listing = await admin_client.get("/admin/webhooks")
        assert "Disabled:" in listing.text
        view = await admin_client.get(url + "?status=failed")
        text = html.unescape(view.text)
        assert "2 attempts in a row failed" in text
        assert "HTTP 500" in text
        assert "receiver says no" in text  # the response excerpt
        assert "Replay" not in text  # not while disabled

        enabled = await admin_client.post(url + "/enable", data={"csrf_token": csrf})
        assert enabled.status_code == 303
        view = await admin_client.get(url + "?status=failed")
        assert "Replay all 2 failed" in view.text
        message = re.search(r'action="(/admin/webhooks/[^"]+/messages/(\d+)/replay)"', view.text)
        assert message
        hook.default = 204
        replayed = await admin_client.post(message.group(1), data={"csrf_token": csrf})
        assert replayed.status_code == 303
        sender = WebhookSender(db, failing)
        try:
            assert await sender.turn() == 1
        finally:
            await sender.aclose()
        assert len(hook.verified()) == 3
        hook.default = 500
        all_again = await admin_client.post(url + "/replay-failed", data={"csrf_token": csrf})
        assert all_again.status_code == 303
        page_after = await admin_client.get(url)
        assert "1 failed message queued again." in html.unescape(page_after.text)
        hook.default = 204
        delivered = await admin_client.get(url + "?status=delivered")
        assert "status-sent" in delivered.text

        rotated = await admin_client.post(url + "/secret", data={"csrf_token": csrf})
        assert rotated.status_code == 200
        new_secret = SECRET.search(rotated.text)
        assert new_secret
        assert new_secret.group(1) != hook.secret

        bad_edit = await admin_client.post(
            url, data={"csrf_token": csrf, "url": hook.url, "description": "CRM", "enabled": "on"}
        )
        assert bad_edit.status_code == 400
        assert "Choose at least one event type." in html.unescape(bad_edit.text)

        unconfirmed = await admin_client.post(url + "/delete", data={"csrf_token": csrf})
        assert unconfirmed.status_code == 303
        assert unconfirmed.headers["location"] == url  # kept, with the reason flashed
        assert (await admin_client.get(url)).status_code == 200
        deleted = await admin_client.post(
            url + "/delete", data={"csrf_token": csrf, "confirm": "on"}
        )
        assert deleted.status_code == 303
        assert (await admin_client.get(url)).status_code == 303  # gone: back to the list


async def test_editors_cannot_see_webhooks(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    passwords = fast_passwords()
    try:
        await AuthService(db, settings, passwords).create_user("editor", PASSWORD, Role.EDITOR)
    finally:
        passwords.close()
    await log_in(client, "editor")
    assert (await client.get("/admin/webhooks")).status_code == 403
