"""A list's welcome email (the deliverability issue, migration 0029): the editor, and one
welcome per reader and list, queued in the transaction that confirms the membership."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx

from herald.core.config import Settings
from herald.core.db import Database
from herald.delivery.worker import DeliveryWorker
from herald.email.message import EmailMessage
from herald.email.outbox import OutboxProvider, list_messages
from herald.imports.domain import Mode
from herald.subscriptions.domain import SuppressionReason
from herald.subscriptions.unsubscribe import make_token
from herald.suppressions import repository as suppressions
from tests.integration.test_imports import run_import
from tests.integration.test_signup_lists import form, make_list, memberships
from tests.integration.test_subscriptions import LINK, queued_confirmations
from tests.support.newsletters import CSRF

BROWSER = {"User-Agent": "Mozilla/5.0 (test)"}
BODY = (
    "# Hello {{ subscriber.name }}\n\n"
    'You joined from {{ subscriber.attributes.city | default("somewhere") }}.\n\n'
    "- one\n- two\n"
)


async def save_welcome(
    db: Database, list_id: uuid.UUID, *, enabled: bool = True, subject: str = "Welcome aboard"
) -> None:
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO list_welcomes (list_id, enabled, subject, body) VALUES ($1, $2, $3, $4)",
            list_id,
            enabled,
            subject,
            BODY,
        )


async def welcomes(db: Database, email: str | None = None) -> list[EmailMessage]:
    async with db.connection() as conn:
        rows = await conn.fetch(
            "SELECT message::text AS m FROM deliveries WHERE kind = 'welcome' ORDER BY id"
        )
    messages = [EmailMessage.from_json(json.loads(row["m"])) for row in rows]
    return [m for m in messages if email is None or m.recipient == email]


async def confirm_path(db: Database, email: str) -> str:
    messages = await queued_confirmations(db, email)
    assert messages, f"no confirmation email for {email}"
    match = LINK.search(messages[-1].text_body)
    assert match
    return f"/subscriptions/confirm?subscription_token={match.group(1)}"


async def csrf_of(client: httpx.AsyncClient, url: str) -> str:
    page = await client.get(url, headers=BROWSER)
    assert page.status_code == 200, page.text
    found = CSRF.search(page.text)
    assert found
    return found.group(1)


# -- sending --------------------------------------------------------------------


async def test_a_confirmation_link_queues_one_welcome_per_list_that_has_one(
    client: httpx.AsyncClient, db: Database
) -> None:
    news = await make_list(db, "news")
    deals = await make_list(db, "deals")
    await make_list(db, "quiet")  # no welcome at all
    await save_welcome(db, news, subject="Welcome to news")
    await save_welcome(db, deals, subject="Welcome to deals")
    signed = await client.post(
        "/subscriptions", data=form("ann@example.com", "news", "deals", "quiet")
    )
    assert signed.status_code == 200
    assert await welcomes(db) == []  # not before the reader confirmed

    path = await confirm_path(db, "ann@example.com")
    assert (await client.get(path)).status_code == 200
    sent = await welcomes(db, "ann@example.com")
    assert sorted(m.subject for m in sent) == ["Welcome to deals", "Welcome to news"]
    message = sent[0]
    assert "Hello Ann" in message.text_body
    assert "somewhere" in message.text_body
    assert "<h1" in message.html_body
    assert "Hello Ann" in message.html_body
    headers = dict(message.headers)
    assert headers["List-Unsubscribe"].startswith("<http://")
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "/preferences?token=" in message.html_body  # the layout's footer

    # The link again, twice at once, later: nothing more.
    again = await asyncio.gather(client.get(path), client.get(path))
    assert [r.status_code for r in again] == [200, 200]
    assert len(await welcomes(db)) == 2


async def test_the_welcome_s_one_click_link_leaves_that_list_alone(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    news = await make_list(db, "news")
    await save_welcome(db, news)
    await client.post("/subscriptions", data=form("ivy@example.com", "default", "news"))
    await client.get(await confirm_path(db, "ivy@example.com"))
    (message,) = await welcomes(db)
    link = dict(message.headers)["List-Unsubscribe"].strip("<>")
    assert link.endswith(f"&list={news}")
    path = link.removeprefix(settings.public_base_url)
    shown = await client.get(path, headers=BROWSER)
    assert shown.status_code == 200
    assert "Stop sending <strong>news</strong>" in shown.text
    assert f"list={news}" in shown.text  # the page's button posts the same link
    for _ in range(2):  # idempotent
        left = await client.post(path, data={"List-Unsubscribe": "One-Click"})
        assert left.status_code == 200
    assert await memberships(db, "ivy@example.com") == {
        "default": "confirmed",
        "news": "unsubscribed",
    }
    async with db.connection() as conn:
        status = await conn.fetchval(
            "SELECT status FROM subscriptions WHERE email = 'ivy@example.com'"
        )
    assert status == "confirmed"

    # A list that is gone (or a garbled id): out of everything, as an unknown issue's link.
    token = path.split("token=")[1].split("&")[0]
    gone = await client.post(
        f"/unsubscribe/one-click?token={token}&list={uuid.uuid4()}",
        data={"List-Unsubscribe": "One-Click"},
    )
    assert gone.status_code == 200
    async with db.connection() as conn:
        status = await conn.fetchval(
            "SELECT status FROM subscriptions WHERE email = 'ivy@example.com'"
        )
    assert status == "unsubscribed"
    garbled = await client.get(f"/unsubscribe/one-click?token={token}&list=%C2%B2", headers=BROWSER)
    assert garbled.status_code == 200


async def test_a_disabled_welcome_sends_nothing(client: httpx.AsyncClient, db: Database) -> None:
    news = await make_list(db, "news")
    await save_welcome(db, news, enabled=False)
    await client.post("/subscriptions", data=form("bob@example.com", "news"))
    assert (await client.get(await confirm_path(db, "bob@example.com"))).status_code == 200
    assert await welcomes(db) == []


async def test_a_single_opt_in_sign_up_is_welcomed_at_once_and_only_once(
    client: httpx.AsyncClient, db: Database
) -> None:
    instant = await make_list(db, "instant", opt_in="single")
    await save_welcome(db, instant)
    for _ in range(3):
        assert (
            await client.post("/subscriptions", data=form("cy@example.com", "instant"))
        ).status_code == 200
    assert [m.recipient for m in await welcomes(db)] == ["cy@example.com"]
    assert await queued_confirmations(db, "cy@example.com") == []


async def test_concurrent_confirmations_welcome_once(
    client: httpx.AsyncClient, db: Database
) -> None:
    """Eight sign-ups of one new address to a single-opt-in list at once, and one
    confirmation link clicked eight times at once: one welcome each, whichever wins."""
    instant = await make_list(db, "instant", opt_in="single")
    news = await make_list(db, "news")
    await save_welcome(db, instant)
    await save_welcome(db, news)
    signed_up = await asyncio.gather(
        *(client.post("/subscriptions", data=form("gus@example.com", "instant")) for _ in range(8))
    )
    assert {response.status_code for response in signed_up} == {200}
    assert [m.recipient for m in await welcomes(db)] == ["gus@example.com"]

    await client.post("/subscriptions", data=form("hal@example.com", "news"))
    path = await confirm_path(db, "hal@example.com")
    clicked = await asyncio.gather(*(client.get(path) for _ in range(8)))
    assert {response.status_code for response in clicked} == {200}
    assert len(await welcomes(db, "hal@example.com")) == 1


async def test_a_single_opt_in_list_joined_with_a_double_one_waits_for_the_address(
    client: httpx.AsyncClient, db: Database
) -> None:
    instant = await make_list(db, "instant", opt_in="single")
    await make_list(db, "news")
    await save_welcome(db, instant)
    await client.post("/subscriptions", data=form("di@example.com", "instant", "news"))
    assert await welcomes(db) == []  # the address is not confirmed yet
    await client.get(await confirm_path(db, "di@example.com"))
    assert len(await welcomes(db, "di@example.com")) == 1


async def test_leaving_and_joining_again_sends_no_second_welcome(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    news = await make_list(db, "news")
    await save_welcome(db, news)
    await client.post("/subscriptions", data=form("eve@example.com", "news"))
    await client.get(await confirm_path(db, "eve@example.com"))
    assert len(await welcomes(db)) == 1
    async with db.connection() as conn:
        reader = await conn.fetchval(
            "SELECT id FROM subscriptions WHERE email = $1", "eve@example.com"
        )
    token = make_token(settings, reader)
    left = await client.post(
        f"/unsubscribe/one-click?token={token}", data={"List-Unsubscribe": "One-Click"}
    )
    assert left.status_code == 200
    await client.post("/subscriptions", data=form("eve@example.com", "news"))
    await client.get(await confirm_path(db, "eve@example.com"))
    async with db.connection() as conn:
        status = await conn.fetchval("SELECT status FROM subscriptions WHERE id = $1", reader)
    assert status == "confirmed"
    assert len(await welcomes(db)) == 1


async def test_joining_in_the_preference_centre_is_welcomed_once(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    news = await make_list(db, "news")
    await save_welcome(db, news)
    await client.post("/subscriptions", data=form("fay@example.com"))  # the default list
    await client.get(await confirm_path(db, "fay@example.com"))
    assert await welcomes(db) == []
    async with db.connection() as conn:
        reader = await conn.fetchval(
            "SELECT id FROM subscriptions WHERE email = $1", "fay@example.com"
        )
    url = f"/preferences?token={make_token(settings, reader)}"
    csrf = await csrf_of(client, url)
    for _ in range(2):  # saved twice: joined once
        saved = await client.post(
            url, data={"csrf_token": csrf, "list": ["default", "news"]}, headers=BROWSER
        )
        assert saved.status_code == 303, saved.text
    assert [m.recipient for m in await welcomes(db)] == ["fay@example.com"]


async def test_imports_confirmed_by_the_operator_get_none_opt_in_ones_when_they_confirm(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    weekly = await make_list(db, "weekly")
    await save_welcome(db, weekly)
    await run_import(
        db, settings, b"email,name,city\nann@example.com,Ann,Paris\n", lists=("weekly",)
    )
    assert await welcomes(db) == []  # the operator attested consent: nobody joined just now
    await run_import(
        db,
        settings,
        b"email,name,city\nbob@example.com,Bob,Oslo\n",
        mode=Mode.OPT_IN,
        lists=("weekly",),
    )
    assert await welcomes(db) == []
    await client.get(await confirm_path(db, "bob@example.com"))
    (message,) = await welcomes(db)
    assert message.recipient == "bob@example.com"
    assert "You joined from Oslo." in message.text_body  # the imported attribute


async def test_the_welcome_goes_out_through_the_queue_as_stored(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    """A worker without any renderer for the kind — as the previous release's is — sends
    the stored message as it is, through the outbox provider."""
    instant = await make_list(db, "instant", opt_in="single")
    await save_welcome(db, instant, subject="Hi there")
    await client.post("/subscriptions", data=form("gus@example.com", "instant"))
    worker = DeliveryWorker(db, OutboxProvider(db), settings.delivery, name="plain")
    for _ in range(5):
        if (await worker.run_once()).claimed == 0:
            break
    async with db.connection() as conn:
        stored = await list_messages(conn, recipient="gus@example.com")
        status = await conn.fetchval("SELECT status FROM deliveries WHERE kind = 'welcome'")
    assert status == "sent"
    assert [m.subject for m in stored] == ["Hi there"]
    assert "Hello Ann" in stored[0].text_body
    assert ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click") in stored[0].headers


async def test_a_welcome_whose_reader_left_before_it_was_sent_is_not_sent(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    """A welcome waits in the queue behind whatever was due before it (an issue's fan-out
    at the provider's rate: hours). Sent as stored, it reached a reader who had
    unsubscribed meanwhile, or whose address a complaint had suppressed; the worker as the
    composition root builds it now checks the reader first, as it does for an issue."""
    from herald.composition.worker import delivery_renderers

    instant = await make_list(db, "instant", opt_in="single")
    await save_welcome(db, instant, subject="Hi there")
    for email in ("gus@example.com", "hal@example.com", "ida@example.com"):
        await client.post("/subscriptions", data=form(email, "instant"))
    assert len(await welcomes(db)) == 3
    async with db.connection() as conn:
        gus = await conn.fetchval("SELECT id FROM subscriptions WHERE email = 'gus@example.com'")
    left = await client.post(
        f"/unsubscribe/one-click?token={make_token(settings, gus)}",
        data={"List-Unsubscribe": "One-Click"},
    )
    assert left.status_code == 200
    async with db.transaction() as conn:  # a complaint about ida: suppressed
        await suppressions.add(conn, "ida@example.com", SuppressionReason.COMPLAINT, "test")

    worker = DeliveryWorker(
        db,
        OutboxProvider(db),
        settings.delivery,
        renderers=delivery_renderers(db, settings),
        name="composed",
    )
    for _ in range(5):
        if (await worker.run_once()).claimed == 0:
            break
    async with db.connection() as conn:
        sent = await list_messages(conn)
        rows = await conn.fetch(
            "SELECT recipient, status FROM deliveries WHERE kind = 'welcome' ORDER BY recipient"
        )
    assert [m.recipient for m in sent] == ["hal@example.com"]
    assert [(r["recipient"], r["status"]) for r in rows] == [
        ("gus@example.com", "suppressed"),
        ("hal@example.com", "sent"),
        ("ida@example.com", "suppressed"),
    ]


async def test_a_welcome_that_fails_for_one_reader_does_not_fail_the_confirmation(
    client: httpx.AsyncClient, db: Database
) -> None:
    instant = await make_list(db, "instant", opt_in="single")
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO list_welcomes (list_id, enabled, subject, body)"
            " VALUES ($1, true, 'Hi', $2)",
            instant,
            "{{ subscriber.attributes.n * 10000000 }}",
        )
        await conn.execute(
            "INSERT INTO subscriptions (id, email, name, status, attributes)"
            " VALUES (gen_random_uuid(), 'hal@example.com', 'Hal', 'confirmed',"
            ' \'{"n": "xxxxxxxx"}\')'
        )
    joined = await client.post("/subscriptions", data=form("hal@example.com", "instant"))
    assert joined.status_code == 200
    async with db.connection() as conn:
        status = await conn.fetchval(
            "SELECT m.status FROM list_memberships m JOIN subscriptions s ON s.id = m.subscriber_id"
            " WHERE s.email = 'hal@example.com' AND m.list_id = $1",
            instant,
        )
    assert status == "confirmed"
    assert await welcomes(db) == []
    async with db.connection() as conn:  # it was due and tried: taken, not retried later
        assert await conn.fetchval("SELECT count(*) FROM list_welcomes_sent") == 1


# -- the editor -----------------------------------------------------------------


async def test_the_editor_saves_previews_and_refuses_a_broken_template(
    admin_client: httpx.AsyncClient, db: Database
) -> None:
    news = await make_list(db, "news")
    url = f"/admin/lists/{news}/welcome"
    csrf = await csrf_of(admin_client, url)
    listed = await admin_client.get(f"/admin/lists/{news}")
    assert "Write a welcome email" in listed.text

    broken = await admin_client.post(
        url, data={"csrf_token": csrf, "enabled": "on", "subject": "Hi", "body": "{% if %}"}
    )
    assert broken.status_code == 400
    assert "template error on line 1" in broken.text
    assert "{% if %}" in broken.text  # the form again, as typed
    failing = await admin_client.post(
        url,
        data={
            "csrf_token": csrf,
            "enabled": "on",
            "subject": "Hi",
            "body": "{{ range(10**9) | list }}",
        },
    )
    assert failing.status_code == 400, failing.text
    for bad in (
        {"subject": "", "body": "x"},
        {"subject": "x" * 201, "body": "x"},
        {"subject": "Hi", "body": " "},
    ):
        refused = await admin_client.post(url, data={"csrf_token": csrf, **bad})
        assert refused.status_code == 400
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM list_welcomes") == 0

    preview = await admin_client.post(
        f"{url}/preview", data={"csrf_token": csrf, "subject": "Hi", "body": BODY}
    )
    assert preview.status_code == 200
    assert "Hello Sample Subscriber" in preview.text
    assert "sandbox" in preview.headers["content-security-policy"]
    text_part = await admin_client.post(
        f"{url}/preview",
        data={"csrf_token": csrf, "subject": "Hi", "body": BODY, "part": "text", "scheme": "dark"},
    )
    assert text_part.status_code == 200
    assert '<pre id="text-part">' in text_part.text
    assert "Hello Sample Subscriber" in text_part.text
    dark = await admin_client.post(
        f"{url}/preview", data={"csrf_token": csrf, "subject": "Hi", "body": BODY, "scheme": "dark"}
    )
    assert "@media all" in dark.text
    odd = await admin_client.post(
        f"{url}/preview", data={"csrf_token": csrf, "subject": "Hi", "body": BODY, "part": "pdf"}
    )
    assert odd.status_code == 400
    bad_preview = await admin_client.post(
        f"{url}/preview", data={"csrf_token": csrf, "subject": "Hi", "body": "{{ nope("}
    )
    assert bad_preview.status_code == 400

    saved = await admin_client.post(
        url, data={"csrf_token": csrf, "enabled": "on", "subject": "  Hi   there ", "body": BODY}
    )
    assert saved.status_code == 303
    async with db.connection() as conn:
        row = await conn.fetchrow("SELECT enabled, subject, body FROM list_welcomes")
    assert row is not None
    assert (row["enabled"], row["subject"], row["body"]) == (True, "Hi there", BODY.strip())
    page = await admin_client.get(url)
    assert "Hi there" in page.text
    shown = await admin_client.get(f"{url}/preview")
    assert shown.status_code == 200
    assert "Hello Sample Subscriber" in shown.text
    assert "Edit the welcome email" in (await admin_client.get(f"/admin/lists/{news}")).text

    off = await admin_client.post(url, data={"csrf_token": csrf, "subject": "Hi", "body": BODY})
    assert off.status_code == 303
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT enabled FROM list_welcomes") is False


async def test_the_editor_refuses_forgeries_and_unknown_lists(
    admin_client: httpx.AsyncClient, db: Database
) -> None:
    news = await make_list(db, "news")
    url = f"/admin/lists/{news}/welcome"
    forged = await admin_client.post(
        url, data={"csrf_token": "forged", "subject": "Hi", "body": "x"}
    )
    assert forged.status_code == 403
    assert (await admin_client.get(f"/admin/lists/{uuid.uuid4()}/welcome")).status_code == 404
    csrf = await csrf_of(admin_client, url)
    gone = await admin_client.post(
        f"/admin/lists/{uuid.uuid4()}/welcome",
        data={"csrf_token": csrf, "subject": "Hi", "body": "x"},
    )
    assert gone.status_code == 404
    garbled = await admin_client.get("/admin/lists/not-a-uuid/welcome")
    assert garbled.status_code == 400
    huge = await admin_client.post(
        url, data={"csrf_token": csrf, "subject": "Hi", "body": "x" * 20_001}
    )
    assert huge.status_code == 400
    assert "too long" in huge.text


async def test_a_test_send_queues_the_saved_welcome_marked_test(
    admin_client: httpx.AsyncClient, db: Database
) -> None:
    news = await make_list(db, "news")
    await save_welcome(db, news, subject="Welcome aboard")
    url = f"/admin/lists/{news}/welcome"
    csrf = await csrf_of(admin_client, url)
    sent = await admin_client.post(
        f"{url}/test", data={"csrf_token": csrf, "email": "me@example.org"}
    )
    assert sent.status_code == 303
    refused = await admin_client.post(f"{url}/test", data={"csrf_token": csrf, "email": "nope"})
    assert refused.status_code == 303  # flashed on the editor
    async with db.connection() as conn:
        rows = await conn.fetch("SELECT kind, recipient, message::text AS m FROM deliveries")
    assert [(r["kind"], r["recipient"]) for r in rows] == [("test", "me@example.org")]
    assert json.loads(rows[0]["m"])["subject"] == "[TEST] Welcome aboard"
    assert await welcomes(db) == []


async def test_the_editor_takes_a_long_body_outside_ascii_and_bounds_the_request(
    admin_client: httpx.AsyncClient, db: Database
) -> None:
    news = await make_list(db, "news")
    url = f"/admin/lists/{news}/welcome"
    csrf = await csrf_of(admin_client, url)
    body = "Grüße aus Köln, ä ö ü é. " * 600  # 15,000 characters, ~100 KB URL-encoded
    saved = await admin_client.post(url, data={"csrf_token": csrf, "subject": "Hi", "body": body})
    assert saved.status_code == 303
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT length(body) FROM list_welcomes") == len(body.strip())
    huge = await admin_client.post(
        url, data={"csrf_token": csrf, "subject": "Hi", "body": "é" * 50_000}
    )
    assert huge.status_code == 413
    # The preview, re-posted while the editor types, has the same bounds.
    preview = f"{url}/preview"
    long_preview = await admin_client.post(
        preview, data={"csrf_token": csrf, "subject": "Hi", "body": body}
    )
    assert long_preview.status_code == 200
    too_long = await admin_client.post(
        preview, data={"csrf_token": csrf, "subject": "Hi", "body": "x" * 20_001}
    )
    assert too_long.status_code == 400
    assert "too long" in too_long.text
    huge_preview = await admin_client.post(
        preview, data={"csrf_token": csrf, "subject": "Hi", "body": "é" * 50_000}
    )
    assert huge_preview.status_code == 413
