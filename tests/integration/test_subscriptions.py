"""The subscribe/confirm contract (contract §4), against a real database."""

from __future__ import annotations

import asyncio
import html
import re

import httpx
import pytest

from herald.core.config import Settings
from herald.core.db import Database
from herald.delivery import repository as deliveries
from herald.email.message import EmailMessage
from herald.subscriptions.unsubscribe import make_token
from tests.support.database import make_settings
from tests.support.newsletters import add_subscribers

LINK = re.compile(r"https?://[^\s\"<>]+/subscriptions/confirm\?subscription_token=([A-Za-z0-9]+)")


async def subscribe(client: httpx.AsyncClient, **fields: str) -> httpx.Response:
    return await client.post("/subscriptions", data=fields)


async def queued_confirmations(db: Database, email: str | None = None) -> list[EmailMessage]:
    async with db.connection() as conn:
        rows = await conn.fetch(
            "SELECT message::text AS m FROM deliveries WHERE kind = 'confirmation' ORDER BY id"
        )
    import json

    messages = [EmailMessage.from_json(json.loads(row["m"])) for row in rows]
    return [m for m in messages if email is None or m.recipient == email]


async def status_of(db: Database, email: str) -> str | None:
    async with db.connection() as conn:
        status: str | None = await conn.fetchval(
            "SELECT status FROM subscriptions WHERE lower(email) = lower($1)", email
        )
        return status


async def confirmation_link(db: Database, email: str) -> str:
    messages = await queued_confirmations(db, email)
    assert messages, f"no confirmation email queued for {email}"
    match = LINK.search(messages[-1].text_body)
    assert match, messages[-1].text_body
    return match.group(0)


# -- subscribing ---------------------------------------------------------------


async def test_home_page_has_a_subscribe_form(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert 'action="/subscriptions"' in response.text
    assert 'name="name"' in response.text
    assert 'name="email"' in response.text


CSRF_INPUT = re.compile(r'<input type="hidden" name="csrf_token" value="([^"]+)">')


async def test_the_subscribe_form_carries_a_genuine_csrf_token(
    client: httpx.AsyncClient, db: Database
) -> None:
    home = await client.get("/")
    form = re.search(r'<form action="/subscriptions" method="post">.*?</form>', home.text, re.S)
    assert form, home.text
    found = CSRF_INPUT.search(form.group(0))
    assert found, form.group(0)
    # Bound to this visitor's anonymous cookie: the login form (which requires it) agrees.
    assert "herald_csrf" in client.cookies
    login = await client.get("/login")
    assert found.group(1) in login.text
    # Posting the form as a browser would (token included) subscribes.
    response = await client.post(
        "/subscriptions",
        data={"csrf_token": found.group(1), "name": "Ann", "email": "ann@example.com"},
    )
    assert response.status_code == 200
    assert await status_of(db, "ann@example.com") == "pending_confirmation"


async def test_the_unsubscribe_form_carries_a_csrf_token_and_posts_as_is(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    [subscriber] = await add_subscribers(db, 1)
    page = await client.get(f"/unsubscribe/one-click?token={make_token(settings, subscriber)}")
    form = re.search(r'<form action="([^"]+)" method="post">(.*?)</form>', page.text, re.S)
    assert form, page.text
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form[2]))
    assert fields["csrf_token"]
    assert fields["List-Unsubscribe"] == "One-Click"
    response = await client.post(html.unescape(form[1]), data=fields)
    assert response.status_code == 200
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT status FROM subscriptions") == "unsubscribed"


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_forged_unsubscribe_token_with_non_ascii_is_refused_not_a_500(
    client: httpx.AsyncClient, db: Database, settings: Settings, method: str
) -> None:
    [subscriber] = await add_subscribers(db, 1)
    ident = make_token(settings, subscriber).partition(".")[0]
    forged = f"{ident}.{'é' * 22}"  # the right length, characters compare_digest refuses
    response = await client.request(
        method,
        "/unsubscribe/one-click",
        params={"token": forged},
        data={"List-Unsubscribe": "One-Click"},
    )
    assert 400 <= response.status_code < 500, response.text
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT status FROM subscriptions") == "confirmed"


async def test_valid_form_returns_200_and_persists_a_pending_subscription(
    client: httpx.AsyncClient, db: Database
) -> None:
    response = await subscribe(client, name="le guin", email="ursula_le_guin@gmail.com")
    assert response.status_code == 200
    assert await status_of(db, "ursula_le_guin@gmail.com") == "pending_confirmation"


async def test_valid_subscription_queues_one_confirmation_email_with_one_link(
    client: httpx.AsyncClient, db: Database
) -> None:
    await subscribe(client, name="le guin", email="ursula_le_guin@gmail.com")
    [message] = await queued_confirmations(db)
    assert message.recipient == "ursula_le_guin@gmail.com"
    html_links = LINK.findall(message.html_body)
    text_links = LINK.findall(message.text_body)
    assert len(text_links) == 1
    assert set(html_links) == set(text_links)
    assert (
        LINK.search(message.text_body)
        .group(0)
        .startswith(  # type: ignore[union-attr]
            "http://herald.test/subscriptions/confirm?subscription_token="
        )
    )


async def test_json_body_is_accepted(client: httpx.AsyncClient, db: Database) -> None:
    response = await client.post("/subscriptions", json={"name": "Ann", "email": "ann@example.com"})
    assert response.status_code == 200
    assert response.json()["status"] == "pending_confirmation"
    assert await status_of(db, "ann@example.com") == "pending_confirmation"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "le guin"}, "email is missing"),
        ({"email": "ursula_le_guin@gmail.com"}, "name is missing"),
        ({}, "name is missing; email is missing"),
        ({"name": "", "email": "ursula_le_guin@gmail.com"}, "name must not be empty"),
        ({"name": "Ursula", "email": ""}, "email must not be empty"),
        ({"name": "Ursula", "email": "definitely-not-an-email"}, "not a valid email address"),
        ({"name": "   ", "email": "ursula@example.com"}, "name must not be empty"),
        ({"name": "<script>", "email": "ursula@example.com"}, "name must not contain"),
        ({"name": "x" * 257, "email": "ursula@example.com"}, "name is too long"),
        # "Zalgo": one grapheme, 1001 code points.
        ({"name": "a" + "\u0301" * 1000, "email": "ursula@example.com"}, "code points"),
        (
            {
                "name": "Ursula" + "".join(chr(0x363 + n) for n in range(9)),
                "email": "ursula@example.com",
            },
            "too many accents",
        ),
    ],
)
async def test_bad_form_fields_get_400_naming_the_problem(
    client: httpx.AsyncClient, db: Database, fields: dict[str, str], message: str
) -> None:
    response = await client.post("/subscriptions", data=fields)
    assert response.status_code == 400
    assert message in response.text
    assert await queued_confirmations(db) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"name": "Ann"}', "email is missing"),
        ('{"name": 7, "email": "ann@example.com"}', "name must be a string"),
        ("[1, 2]", "must be an object"),
        ("{not json", "not valid JSON"),
    ],
)
async def test_bad_json_bodies_get_400(client: httpx.AsyncClient, body: str, message: str) -> None:
    response = await client.post(
        "/subscriptions", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert message in response.json()["message"]


async def test_unsupported_media_type_is_415(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/subscriptions", content="name=a", headers={"content-type": "text/csv"}
    )
    assert response.status_code == 415


async def test_oversized_body_is_413_and_nothing_is_stored(
    client: httpx.AsyncClient, db: Database
) -> None:
    response = await client.post(
        "/subscriptions", data={"name": "x" * (70 * 1024), "email": "big@example.com"}
    )
    assert response.status_code == 413
    assert await status_of(db, "big@example.com") is None


async def test_resubscribing_while_pending_sends_a_fresh_confirmation(
    client: httpx.AsyncClient, db: Database
) -> None:
    await subscribe(client, name="Ann", email="ann@example.com")
    response = await subscribe(client, name="Ann B.", email="ANN@example.com")
    assert response.status_code == 200
    messages = await queued_confirmations(db)
    assert len(messages) == 2
    first, second = (LINK.search(m.text_body).group(1) for m in messages)  # type: ignore[union-attr]
    assert first != second
    assert await status_of(db, "ann@example.com") == "pending_confirmation"


async def test_resubscribing_when_confirmed_is_a_quiet_200(
    client: httpx.AsyncClient, db: Database
) -> None:
    await subscribe(client, name="Ann", email="ann@example.com")
    link = await confirmation_link(db, "ann@example.com")
    assert (await client.get(link)).status_code == 200
    response = await subscribe(client, name="Ann", email="ann@example.com")
    assert response.status_code == 200
    assert len(await queued_confirmations(db)) == 1
    assert await status_of(db, "ann@example.com") == "confirmed"


async def test_confirmation_emails_to_one_address_are_capped_per_day(
    client: httpx.AsyncClient, db: Database
) -> None:
    for _ in range(8):
        assert (await subscribe(client, name="Ann", email="ann@example.com")).status_code == 200
    assert len(await queued_confirmations(db)) == 5


async def test_concurrent_signups_for_one_address_make_one_subscription(
    client: httpx.AsyncClient, db: Database
) -> None:
    responses = await asyncio.gather(
        *(subscribe(client, name="Ann", email="race@example.com") for _ in range(8))
    )
    assert [r.status_code for r in responses] == [200] * 8
    async with db.connection() as conn:
        count = await conn.fetchval("SELECT count(*) FROM subscriptions")
    assert count == 1
    assert len(await queued_confirmations(db)) == 5  # the rest are throttled


# -- confirming ----------------------------------------------------------------


async def test_confirmation_link_confirms_the_subscriber(
    client: httpx.AsyncClient, db: Database
) -> None:
    await subscribe(client, name="Ann", email="ann@example.com")
    link = await confirmation_link(db, "ann@example.com")
    response = await client.get(link)
    assert response.status_code == 200
    assert "subscription confirmed" in response.text
    assert await status_of(db, "ann@example.com") == "confirmed"


async def test_reclicking_a_used_link_is_200(client: httpx.AsyncClient, db: Database) -> None:
    await subscribe(client, name="Ann", email="ann@example.com")
    link = await confirmation_link(db, "ann@example.com")
    assert (await client.get(link)).status_code == 200
    assert (await client.get(link)).status_code == 200


async def test_older_link_of_a_pending_subscriber_still_works(
    client: httpx.AsyncClient, db: Database
) -> None:
    await subscribe(client, name="Ann", email="ann@example.com")
    first = await confirmation_link(db, "ann@example.com")
    await subscribe(client, name="Ann", email="ann@example.com")
    assert (await client.get(first)).status_code == 200
    assert await status_of(db, "ann@example.com") == "confirmed"


@pytest.mark.parametrize("query", ["", "?subscription_token=", "?other=1"])
async def test_confirm_without_a_token_is_400(client: httpx.AsyncClient, query: str) -> None:
    response = await client.get("/subscriptions/confirm" + query)
    assert response.status_code == 400
    assert "subscription_token" in response.text


@pytest.mark.parametrize(
    "token", ["a" * 32, "short", "with spaces in it but long enough", "ü" * 30]
)
async def test_unknown_token_is_401(client: httpx.AsyncClient, token: str) -> None:
    response = await client.get("/subscriptions/confirm", params={"subscription_token": token})
    assert response.status_code == 401


async def test_expired_token_is_401_and_does_not_confirm(
    client: httpx.AsyncClient, db: Database
) -> None:
    await subscribe(client, name="Ann", email="ann@example.com")
    link = await confirmation_link(db, "ann@example.com")
    async with db.connection() as conn:
        await conn.execute("UPDATE subscription_tokens SET expires_at = now() - interval '1 s'")
    response = await client.get(link)
    assert response.status_code == 401
    assert "expired" in response.text
    assert await status_of(db, "ann@example.com") == "pending_confirmation"


async def test_token_is_stored_only_as_a_hash(client: httpx.AsyncClient, db: Database) -> None:
    await subscribe(client, name="Ann", email="ann@example.com")
    link = await confirmation_link(db, "ann@example.com")
    token = link.rsplit("=", 1)[1]
    async with db.connection() as conn:
        dump = await conn.fetchval(
            "SELECT string_agg(encode(token_hash, 'escape'), '') FROM subscription_tokens"
        )
    assert token not in dump


async def test_subscription_and_its_email_commit_together(
    client: httpx.AsyncClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Transactional outbox: if queuing the email fails, the subscription is not kept."""

    async def broken_enqueue(*args: object, **kwargs: object) -> int:
        raise RuntimeError("queue write failed")

    monkeypatch.setattr(deliveries, "enqueue", broken_enqueue)
    response = await subscribe(client, name="Ann", email="ann@example.com")
    assert response.status_code == 500
    assert await status_of(db, "ann@example.com") is None


async def test_housekeeping_deletes_long_expired_tokens_only(
    client: httpx.AsyncClient, db: Database
) -> None:
    from herald.composition import housekeeping

    await subscribe(client, name="Ann", email="ann@example.com")
    await subscribe(client, name="Bob", email="bob@example.com")
    async with db.connection() as conn:
        await conn.execute(
            "UPDATE subscription_tokens SET expires_at = now() - interval '31 days'"
            " WHERE subscriber_id = (SELECT id FROM subscriptions WHERE email = 'ann@example.com')"
        )
    settings = make_settings("postgresql://unused")
    done = await housekeeping.run_once(db, settings)
    assert done["expired_tokens_deleted"] == 1
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM subscription_tokens") == 1
