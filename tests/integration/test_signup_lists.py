"""POST /subscriptions with lists (the audience issue): the chosen lists and their consent
records, single and double opt-in, one email confirming every list of a sign-up, the
suppression list, and hostile forms. Contract §4 (no ``list`` field) is
tests/integration/test_subscriptions.py."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from herald.core.db import Database
from herald.subscriptions.routes import SUBSCRIBED_MESSAGE
from tests.integration.test_subscriptions import (
    confirmation_link,
    queued_confirmations,
    status_of,
)


async def make_list(
    db: Database, slug: str, *, opt_in: str = "double", visibility: str = "public"
) -> uuid.UUID:
    async with db.connection() as conn:
        list_id: uuid.UUID = await conn.fetchval(
            "INSERT INTO lists (slug, name, opt_in, visibility) VALUES ($1, $1, $2, $3)"
            " RETURNING id",
            slug,
            opt_in,
            visibility,
        )
    return list_id


async def memberships(db: Database, email: str) -> dict[str, str]:
    async with db.connection() as conn:
        rows = await conn.fetch(
            "SELECT l.slug, m.status FROM list_memberships m JOIN lists l ON l.id = m.list_id"
            " JOIN subscriptions s ON s.id = m.subscriber_id WHERE lower(s.email) = lower($1)",
            email,
        )
    return {r["slug"]: r["status"] for r in rows}


async def suppress(db: Database, email: str, reason: str) -> None:
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO suppressions (address_key, email, reason)"
            " VALUES (herald_address_key($1), $1, $2)",
            email,
            reason,
        )


async def counts(db: Database) -> tuple[int, int, int]:
    async with db.connection() as conn:
        row = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM subscriptions) AS s,"
            " (SELECT count(*) FROM list_memberships) AS m,"
            " (SELECT count(*) FROM deliveries) AS d"
        )
    assert row is not None
    return row["s"], row["m"], row["d"]


def form(email: str = "ann@example.com", *lists: str, **extra: str) -> dict[str, object]:
    fields: dict[str, object] = {"name": "Ann", "email": email, **extra}
    if lists:
        fields["list"] = list(lists)
    return fields


async def test_without_a_list_the_sign_up_joins_the_default_list_with_its_consent(
    client: httpx.AsyncClient, db: Database
) -> None:
    response = await client.post(
        "/subscriptions", data=form(), headers={"user-agent": "Browser/1.0 " + "x" * 600}
    )
    assert response.status_code == 200
    assert await memberships(db, "ann@example.com") == {"default": "pending_confirmation"}
    async with db.connection() as conn:
        row = await conn.fetchrow(
            "SELECT source, host(consent_ip) AS ip, consent_user_agent, confirmed_at"
            " FROM list_memberships"
        )
    assert row is not None
    assert (row["source"], row["ip"], row["confirmed_at"]) == ("form", "127.0.0.1", None)
    assert row["consent_user_agent"].startswith("Browser/1.0 xxx")
    assert len(row["consent_user_agent"]) == 500


async def test_one_email_confirms_every_list_chosen(
    client: httpx.AsyncClient, db: Database
) -> None:
    await make_list(db, "weekly")
    await make_list(db, "events")
    response = await client.post("/subscriptions", data=form("ann@example.com", "weekly", "events"))
    assert response.status_code == 200
    assert await memberships(db, "ann@example.com") == {
        "weekly": "pending_confirmation",
        "events": "pending_confirmation",
    }, "only the lists chosen: no default-list row from 0018's trigger"
    assert len(await queued_confirmations(db)) == 1
    link = await confirmation_link(db, "ann@example.com")
    assert (await client.get(link)).status_code == 200
    assert await status_of(db, "ann@example.com") == "confirmed"
    assert await memberships(db, "ann@example.com") == {
        "weekly": "confirmed",
        "events": "confirmed",
    }
    assert (await client.get(link)).status_code == 200, "a used link, clicked again"


async def test_the_list_page_names_itself_as_the_source(
    client: httpx.AsyncClient, db: Database
) -> None:
    await make_list(db, "weekly")
    data = form("ann@example.com", "weekly", source="l/weekly")
    assert (await client.post("/subscriptions", data=data)).status_code == 200
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT source FROM list_memberships") == "form:l/weekly"


@pytest.mark.parametrize("source", ["evil", "l/", "l/Weekly", "http://x", "l/" + "a" * 61])
async def test_a_source_that_is_no_list_page_is_400(
    client: httpx.AsyncClient, db: Database, source: str
) -> None:
    response = await client.post("/subscriptions", data=form(source=source))
    assert response.status_code == 400
    assert "source" in response.text
    assert await counts(db) == (0, 0, 0)


@pytest.mark.parametrize(
    ("lists", "named"),
    [
        (["nope"], "'nope'"),
        (["secret"], "'secret'"),  # private: not to be joined from a public form
        (["weekly", "nope", "secret"], "'nope', 'secret'"),
        (["Not A Slug!"], "'Not A Slug!'"),
        (["x" * 61], "'xxxxxxxx"),
    ],
)
async def test_unknown_or_private_lists_are_400_naming_them(
    client: httpx.AsyncClient, db: Database, lists: list[str], named: str
) -> None:
    await make_list(db, "weekly")
    await make_list(db, "secret", visibility="private")
    response = await client.post("/subscriptions", data=form("ann@example.com", *lists))
    assert response.status_code == 400
    assert named in response.text
    assert "does not exist or is not open to sign-ups" in response.text
    assert await counts(db) == (0, 0, 0)


async def test_json_sign_ups_name_lists_too(client: httpx.AsyncClient, db: Database) -> None:
    await make_list(db, "weekly")
    response = await client.post(
        "/subscriptions", json={"name": "Ann", "email": "ann@example.com", "list": ["weekly"]}
    )
    assert response.status_code == 200
    one = await client.post(
        "/subscriptions", json={"name": "Bob", "email": "bob@example.com", "list": "weekly"}
    )
    assert one.status_code == 200
    bad = await client.post(
        "/subscriptions", json={"name": "Cy", "email": "cy@example.com", "list": {"a": 1}}
    )
    assert bad.status_code == 400
    assert "list" in bad.json()["message"]
    assert await memberships(db, "bob@example.com") == {"weekly": "pending_confirmation"}


async def test_at_most_twenty_lists(client: httpx.AsyncClient, db: Database) -> None:
    slugs = [f"l{n}" for n in range(21)]
    for slug in slugs:
        await make_list(db, slug)
    ok = await client.post("/subscriptions", data=form("ann@example.com", *slugs[:20]))
    assert ok.status_code == 200
    assert len(await memberships(db, "ann@example.com")) == 20
    response = await client.post("/subscriptions", data=form("bob@example.com", *slugs))
    assert response.status_code == 400
    assert "at most 20" in response.text


async def test_ten_thousand_list_fields_are_a_400_naming_the_field(
    client: httpx.AsyncClient, db: Database
) -> None:
    body = "name=Ann&email=ann%40example.com" + "&list=" * 10_000
    response = await client.post(
        "/subscriptions",
        content=body,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400, response.text
    assert "too many lists" in response.text
    as_json = await client.post(
        "/subscriptions",
        json={"name": "Ann", "email": "ann@example.com", "list": ["a"] * 10_000},
    )
    assert as_json.status_code == 400
    assert "too many lists" in as_json.json()["message"]
    # Ten thousand that name something do not fit the 64 KiB body limit.
    big = await client.post("/subscriptions", data=form("ann@example.com", *["weekly"] * 10_000))
    assert big.status_code == 413
    assert await counts(db) == (0, 0, 0)


async def test_single_opt_in_lists_alone_confirm_at_once_without_an_email(
    client: httpx.AsyncClient, db: Database
) -> None:
    await make_list(db, "news", opt_in="single")
    response = await client.post("/subscriptions", data=form("ann@example.com", "news"))
    assert response.status_code == 200
    assert SUBSCRIBED_MESSAGE in response.text, "the same answer in every case"
    assert await status_of(db, "ann@example.com") == "confirmed"
    assert await memberships(db, "ann@example.com") == {"news": "confirmed"}
    assert await queued_confirmations(db) == []


async def test_single_and_double_lists_together_need_the_email_for_the_address(
    client: httpx.AsyncClient, db: Database
) -> None:
    await make_list(db, "news", opt_in="single")
    await make_list(db, "weekly")
    await client.post("/subscriptions", data=form("ann@example.com", "news", "weekly"))
    assert await status_of(db, "ann@example.com") == "pending_confirmation"
    assert await memberships(db, "ann@example.com") == {
        "news": "confirmed",
        "weekly": "pending_confirmation",
    }
    assert len(await queued_confirmations(db)) == 1


async def test_a_single_opt_in_sign_up_does_not_confirm_a_double_one_still_waiting(
    client: httpx.AsyncClient, db: Database
) -> None:
    await make_list(db, "news", opt_in="single")
    await make_list(db, "weekly")
    await client.post("/subscriptions", data=form("ann@example.com", "weekly"))
    await client.post("/subscriptions", data=form("ann@example.com", "news"))
    assert await status_of(db, "ann@example.com") == "pending_confirmation"
    assert await memberships(db, "ann@example.com") == {
        "news": "confirmed",
        "weekly": "pending_confirmation",
    }
    assert len(await queued_confirmations(db)) == 2, "the address still has to confirm"


async def test_a_confirmed_address_joining_a_double_opt_in_list_confirms_it_by_email(
    client: httpx.AsyncClient, db: Database
) -> None:
    await make_list(db, "weekly")
    await make_list(db, "news", opt_in="single")
    await client.post("/subscriptions", data=form())
    await client.get(await confirmation_link(db, "ann@example.com"))
    assert await memberships(db, "ann@example.com") == {"default": "confirmed"}

    await client.post("/subscriptions", data=form("ann@example.com", "news"))
    assert await memberships(db, "ann@example.com") == {"default": "confirmed", "news": "confirmed"}
    assert len(await queued_confirmations(db)) == 1, "single opt-in: no email"

    await client.post("/subscriptions", data=form("ann@example.com", "weekly"))
    assert (await memberships(db, "ann@example.com"))["weekly"] == "pending_confirmation"
    assert len(await queued_confirmations(db)) == 2
    link = await confirmation_link(db, "ann@example.com")
    assert (await client.get(link)).status_code == 200
    assert await memberships(db, "ann@example.com") == {
        "default": "confirmed",
        "news": "confirmed",
        "weekly": "confirmed",
    }
    assert (await client.get(link)).status_code == 200

    # Signing up again for lists already confirmed: a quiet 200.
    await client.post("/subscriptions", data=form("ann@example.com", "weekly", "news"))
    assert len(await queued_confirmations(db)) == 2


async def test_an_expired_link_does_not_confirm_a_waiting_list_of_a_confirmed_address(
    client: httpx.AsyncClient, db: Database
) -> None:
    await make_list(db, "weekly")
    await client.post("/subscriptions", data=form())
    await client.get(await confirmation_link(db, "ann@example.com"))
    await client.post("/subscriptions", data=form("ann@example.com", "weekly"))
    async with db.connection() as conn:
        await conn.execute("UPDATE subscription_tokens SET expires_at = now() - interval '1 s'")
    response = await client.get(await confirmation_link(db, "ann@example.com"))
    assert response.status_code == 401
    assert (await memberships(db, "ann@example.com"))["weekly"] == "pending_confirmation"


async def test_signing_up_again_is_idempotent_and_keeps_the_resend_limit(
    client: httpx.AsyncClient, db: Database
) -> None:
    await make_list(db, "weekly")
    for _ in range(7):
        data = form("ann@example.com", "weekly", "default")
        assert (await client.post("/subscriptions", data=data)).status_code == 200
    subscriptions, members, _ = await counts(db)
    assert (subscriptions, members) == (1, 2)
    assert len(await queued_confirmations(db)) == 5, "HERALD_SUBSCRIPTIONS__MAX_CONFIRMATIONS"


async def test_concurrent_sign_ups_with_lists_make_one_subscription_and_one_row_per_list(
    client: httpx.AsyncClient, db: Database
) -> None:
    await make_list(db, "weekly")
    await make_list(db, "events")
    responses = await asyncio.gather(
        *(
            client.post("/subscriptions", data=form("race@example.com", "weekly", "events"))
            for _ in range(8)
        )
    )
    assert [r.status_code for r in responses] == [200] * 8
    subscriptions, members, _ = await counts(db)
    assert (subscriptions, members) == (1, 2)
    assert await memberships(db, "race@example.com") == {
        "weekly": "pending_confirmation",
        "events": "pending_confirmation",
    }
    assert len(await queued_confirmations(db)) == 5


@pytest.mark.parametrize("reason", ["erased", "hard_bounce", "complaint", "manual", "provider"])
async def test_a_suppressed_address_is_answered_as_usual_and_nothing_happens(
    client: httpx.AsyncClient, db: Database, reason: str
) -> None:
    await suppress(db, "ann@example.com", reason)
    fine = await client.post("/subscriptions", data=form("fresh@example.com"))
    response = await client.post("/subscriptions", data=form(" ANN@example.com "))
    assert (response.status_code, response.text) == (fine.status_code, fine.text)
    as_json = await client.post("/subscriptions", json={"name": "Ann", "email": "ann@example.com"})
    assert as_json.json()["status"] == "pending_confirmation"
    assert await status_of(db, "ann@example.com") is None
    assert await queued_confirmations(db, "ann@example.com") == []


async def test_a_suppressed_address_that_still_has_a_row_is_left_alone(
    client: httpx.AsyncClient, db: Database
) -> None:
    await client.post("/subscriptions", data=form())
    async with db.connection() as conn:
        await conn.execute("UPDATE subscriptions SET status = 'unsubscribed'")
    await suppress(db, "ann@example.com", "complaint")
    await client.post("/subscriptions", data=form())
    assert await status_of(db, "ann@example.com") == "unsubscribed"
    assert len(await queued_confirmations(db)) == 1, "only the first sign-up's"


async def test_a_reader_who_left_everything_comes_back_only_through_double_opt_in(
    client: httpx.AsyncClient, db: Database
) -> None:
    await make_list(db, "news", opt_in="single")
    await suppress(db, "ann@example.com", "unsubscribed")
    await client.post("/subscriptions", data=form("ann@example.com", "news"))
    assert await status_of(db, "ann@example.com") == "pending_confirmation"
    assert await memberships(db, "ann@example.com") == {"news": "pending_confirmation"}
    assert (await client.get(await confirmation_link(db, "ann@example.com"))).status_code == 200
    assert await memberships(db, "ann@example.com") == {"news": "confirmed"}
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM suppressions") == 0, "lifted"


async def test_an_unsubscribed_address_rejoins_only_the_lists_it_chooses(
    client: httpx.AsyncClient, db: Database
) -> None:
    await make_list(db, "weekly")
    await client.post("/subscriptions", data=form())
    await client.get(await confirmation_link(db, "ann@example.com"))
    async with db.connection() as conn:
        await conn.execute("UPDATE subscriptions SET status = 'unsubscribed'")
    await client.post("/subscriptions", data=form("ann@example.com", "weekly"))
    assert await status_of(db, "ann@example.com") == "pending_confirmation"
    assert await memberships(db, "ann@example.com") == {
        "default": "unsubscribed",
        "weekly": "pending_confirmation",
    }
    await client.get(await confirmation_link(db, "ann@example.com"))
    assert await memberships(db, "ann@example.com") == {
        "default": "unsubscribed",
        "weekly": "confirmed",
    }


async def test_a_reader_from_before_the_lists_is_in_the_default_list_when_signing_up_again(
    client: httpx.AsyncClient, db: Database
) -> None:
    """A confirmed subscription the backfill has not reached yet: signing up again is
    the quiet 200 it always was, and does not ask a reader already mailed to confirm."""
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO subscriptions (id, email, name, status, created_at, confirmed_at)"
            " VALUES ($1, 'old@example.com', 'Old', 'confirmed', now() - interval '1 year',"
            " now() - interval '1 year')",
            uuid.uuid4(),
        )
        await conn.execute("DELETE FROM list_memberships")  # as before migration 0018
    await client.post("/subscriptions", data=form("old@example.com"))
    assert await memberships(db, "old@example.com") == {"default": "confirmed"}
    assert await queued_confirmations(db) == []
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT source FROM list_memberships") == "backfill"


async def test_the_api_create_writes_a_default_membership_and_refuses_a_suppressed_address(
    db: Database, settings: object
) -> None:
    from herald.core.errors import Conflict
    from herald.subscriptions.domain import NewSubscriber
    from herald.subscriptions.service import SubscriptionService

    service = SubscriptionService(db, settings)  # type: ignore[arg-type]
    await service.add(NewSubscriber.parse(name="Ann", email="ann@example.com"))
    assert await memberships(db, "ann@example.com") == {"default": "pending_confirmation"}
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT source FROM list_memberships") == "api"
    await suppress(db, "bob@example.com", "erased")
    with pytest.raises(Conflict, match="suppression list"):
        await service.add(NewSubscriber.parse(name="Bob", email="bob@example.com"))
    assert await status_of(db, "bob@example.com") is None


async def test_the_audience_figures_count_sign_ups_of_every_kind(
    client: httpx.AsyncClient, db: Database
) -> None:
    """The dashboard's and the subscriber list's counts read ``subscriptions``: a
    single-opt-in sign-up is confirmed there, a double one pending, a suppressed one
    nowhere."""
    from herald.subscriptions import repository
    from herald.subscriptions.domain import SubscriptionStatus

    await make_list(db, "news", opt_in="single")
    await make_list(db, "weekly")
    await suppress(db, "gone@example.com", "erased")
    await client.post("/subscriptions", data=form("a@example.com", "news"))
    await client.post("/subscriptions", data=form("b@example.com", "weekly"))
    await client.post("/subscriptions", data=form("gone@example.com", "weekly"))
    async with db.connection() as conn:
        figures = await repository.status_counts(conn)
        today = await conn.fetchrow(
            "SELECT sum(subscribed) AS s, sum(confirmed) AS c FROM subscriber_daily"
        )
    assert figures[SubscriptionStatus.CONFIRMED] == 1
    assert figures[SubscriptionStatus.PENDING] == 1
    assert today is not None
    assert (today["s"], today["c"]) == (2, 1)


async def test_the_api_create_is_double_opt_in_even_when_the_default_list_is_single(
    db: Database, settings: object
) -> None:
    from herald.subscriptions.domain import NewSubscriber
    from herald.subscriptions.service import SubscriptionService

    async with db.connection() as conn:
        await conn.execute("UPDATE lists SET opt_in = 'single' WHERE slug = 'default'")
    service = SubscriptionService(db, settings)  # type: ignore[arg-type]
    view = await service.add(NewSubscriber.parse(name="Ann", email="ann@example.com"))
    assert view.status.value == "pending_confirmation"
    assert await memberships(db, "ann@example.com") == {"default": "pending_confirmation"}
    assert len(await queued_confirmations(db)) == 1


async def test_concurrent_sign_ups_of_one_address_to_different_lists_join_them_all(
    client: httpx.AsyncClient, db: Database
) -> None:
    slugs = [f"list{n}" for n in range(6)]
    for slug in slugs:
        await make_list(db, slug)
    responses = await asyncio.gather(
        *(client.post("/subscriptions", data=form("race@example.com", slug)) for slug in slugs)
    )
    assert [r.status_code for r in responses] == [200] * len(slugs)
    assert await memberships(db, "race@example.com") == dict.fromkeys(slugs, "pending_confirmation")
    subscriptions, members, _ = await counts(db)
    assert (subscriptions, members) == (1, len(slugs))
    # One link (any of them) confirms every list.
    assert (await client.get(await confirmation_link(db, "race@example.com"))).status_code == 200
    assert await memberships(db, "race@example.com") == dict.fromkeys(slugs, "confirmed")
