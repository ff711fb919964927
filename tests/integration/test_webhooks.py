"""Outgoing webhooks end to end against a real receiver: migration 0032's triggers put
events in the outbox on every path (the form, an import, plain SQL as the previous
release would write it), the sender delivers them signed — every request verified with
the ``standardwebhooks`` package —, retries after 500s, times out a receiver that hangs,
follows no redirect, disables an endpoint that keeps failing, and replays a failed
message by hand; nothing is queued for a type no endpoint wants."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from herald.core.config import Settings
from herald.core.db import Database
from herald.core.errors import Conflict, NotFound, ValidationError
from herald.imports.domain import Mode
from herald.imports.job import ImportJob
from herald.imports.service import ImportService
from herald.jobs.domain import JobStatus
from herald.jobs.runner import run_now
from herald.webhooks import repository
from herald.webhooks.domain import MessageStatus
from herald.webhooks.sender import WebhookSender
from herald.webhooks.service import WebhookService
from tests.support.database import make_settings
from tests.support.webhook_receiver import Receiver, receiver

FAST = {
    "timeout_seconds": 2.0,
    "retry_base_seconds": 0.01,
    "retry_max_seconds": 0.02,
    "poll_interval_seconds": 0.05,
}


def webhook_settings(database_url: str, **webhooks: object) -> Settings:
    return make_settings(database_url, webhooks={**FAST, **webhooks})


@pytest.fixture
async def hook() -> AsyncIterator[Receiver]:
    async with receiver() as rec:
        yield rec


async def endpoint(db: Database, settings: Settings, rec: Receiver, types: list[str]) -> uuid.UUID:
    service = WebhookService(db, settings)
    created = await service.create(
        service.draft(url=rec.url, description="test receiver", event_types=types)
    )
    rec.secret = created.secret
    return created.endpoint.id


async def drain(sender: WebhookSender, db: Database, *, turns: int = 50) -> None:
    """Turn the sender until nothing is pending and due (retries are due at once here)."""
    for _ in range(turns):
        if await sender.turn() == 0:
            async with db.connection() as conn:
                left = await conn.fetchval(
                    "SELECT count(*) FROM webhook_messages WHERE status = 'pending'"
                )
            if left == 0:
                return
            await asyncio.sleep(0.03)
    raise AssertionError("messages still pending")


async def messages(db: Database) -> list[dict[str, object]]:
    async with db.connection() as conn:
        rows = await conn.fetch(
            "SELECT id, event_type, status, attempts, last_status, last_error, webhook_id,"
            " payload::text AS payload FROM webhook_messages ORDER BY id"
        )
    return [dict(r) for r in rows]


async def test_form_and_import_produce_signed_events(
    db: Database, database_url: str, client: httpx.AsyncClient, hook: Receiver
) -> None:
    settings = webhook_settings(database_url)
    await endpoint(db, settings, hook, ["subscriber.created", "subscriber.confirmed"])

    answer = await client.post("/subscriptions", data={"name": "Ann", "email": "ann@example.com"})
    assert answer.status_code == 200
    service = ImportService(db, settings)

    async def one_chunk() -> AsyncIterator[bytes]:
        yield b"email,name\nbob@example.com,Bob\ncy@example.com,Cy\n"

    view = await service.upload("people.csv", one_chunk(), created_by=None)
    view = await service.start(view.job.id, roles=None, list_slugs=["default"], mode=Mode.CONFIRMED)
    done = await run_now(db, view.job, ImportJob(settings), budget_seconds=60, lease_seconds=30)
    assert done.status is JobStatus.DONE, done.message

    sender = WebhookSender(db, settings.webhooks)
    try:
        await drain(sender, db)
    finally:
        await sender.aclose()
    payloads = hook.verified()  # every signature checked by standardwebhooks
    seen = sorted((p["type"], p["data"]["email"]) for p in payloads)
    assert seen == [
        ("subscriber.confirmed", "bob@example.com"),
        ("subscriber.confirmed", "cy@example.com"),
        ("subscriber.created", "ann@example.com"),
        ("subscriber.created", "bob@example.com"),
        ("subscriber.created", "cy@example.com"),
    ]
    ann = next(p for p in payloads if p["data"]["email"] == "ann@example.com")
    assert ann["data"]["status"] == "pending_confirmation"
    assert ann["data"]["resubscribed"] is False
    assert ann["timestamp"].endswith("Z")
    assert {r.headers["user-agent"].split("/")[0] for r in hook.requests} == {"Herald-Webhooks"}
    assert all(m["status"] == "delivered" for m in await messages(db))


async def test_nothing_is_queued_for_types_no_endpoint_wants(
    db: Database, database_url: str, client: httpx.AsyncClient, hook: Receiver
) -> None:
    settings = webhook_settings(database_url)
    await endpoint(db, settings, hook, ["issue.sent"])
    await client.post("/subscriptions", data={"name": "Ann", "email": "ann@example.com"})
    async with db.connection() as conn:
        await conn.execute("UPDATE subscriptions SET status = 'confirmed'")
        await conn.execute("UPDATE subscriptions SET status = 'unsubscribed'")
        await conn.execute("DELETE FROM subscriptions")
    assert await messages(db) == []


async def test_every_event_type_and_its_payload(
    db: Database, database_url: str, hook: Receiver
) -> None:
    """Changes made in plain SQL, as the previous release's code makes them."""
    settings = webhook_settings(database_url)
    await endpoint(db, settings, hook, [
        "subscriber.created", "subscriber.confirmed", "subscriber.unsubscribed",
        "subscriber.erased", "issue.published", "issue.sent", "delivery.failed",
        "delivery.bounced", "delivery.complained",
    ])  # fmt: skip
    sid, iid = uuid.uuid4(), uuid.uuid4()
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO subscriptions (id, email, name, status)"
            " VALUES ($1, 'dee@example.com', 'Dee', 'pending_confirmation')",
            sid,
        )
        await conn.execute(
            "UPDATE subscriptions SET status = 'confirmed', confirmed_at = now() WHERE id = $1",
            sid,
        )
        await conn.execute(
            "INSERT INTO newsletter_issues (id, title, html_content, text_content, status)"
            " VALUES ($1, 'Hello', '<p>x</p>', 'x', 'draft')",
            iid,
        )
        await conn.execute(
            "UPDATE newsletter_issues SET status = 'publishing', published_at = now()"
            " WHERE id = $1",
            iid,
        )
        delivery = await conn.fetchval(
            "INSERT INTO deliveries (kind, recipient, subscriber_id, issue_id, max_attempts)"
            " VALUES ('issue', 'dee@example.com', $1, $2, 8) RETURNING id",
            sid,
            iid,
        )
        await conn.execute(
            "UPDATE deliveries SET status = 'failed', last_error = 'mailbox full' WHERE id = $1",
            delivery,
        )
        await conn.execute(
            "UPDATE newsletter_issues SET status = 'sent', completed_at = now(), recipients = 1"
            " WHERE id = $1",
            iid,
        )
        for n, kind in enumerate(("hard_bounce", "complaint", "delivered")):
            await conn.execute(
                "INSERT INTO email_events (provider, provider_event_id, kind, delivery_id,"
                " issue_id, subscriber_id, occurred_at, detail)"
                " VALUES ('postmark', $1, $2, $3, $4, $5, now(), '550 no such user')",
                f"e{n}",
                kind,
                delivery,
                iid,
                sid,
            )
        await conn.execute("UPDATE subscriptions SET status = 'unsubscribed' WHERE id = $1", sid)
        await conn.execute(
            "UPDATE subscriptions SET status = 'pending_confirmation' WHERE id = $1", sid
        )
        await conn.execute("DELETE FROM subscriptions WHERE id = $1", sid)
    sender = WebhookSender(db, settings.webhooks)
    try:
        await drain(sender, db)
    finally:
        await sender.aclose()
    by_type: dict[str, list[dict[str, object]]] = {}
    for payload in hook.verified():
        by_type.setdefault(payload["type"], []).append(payload["data"])
    assert sorted(by_type) == sorted([
        "subscriber.created", "subscriber.confirmed", "subscriber.unsubscribed",
        "subscriber.erased", "issue.published", "issue.sent", "delivery.failed",
        "delivery.bounced", "delivery.complained",
    ])  # fmt: skip
    assert len(by_type["subscriber.created"]) == 2  # the sign-up, then the resubscription
    assert [d["resubscribed"] for d in by_type["subscriber.created"]] == [False, True]
    assert by_type["subscriber.erased"] == [{"id": str(sid)}]  # the id alone
    assert by_type["issue.sent"][0]["recipients"] == 1
    assert by_type["issue.published"][0]["title"] == "Hello"
    failed = by_type["delivery.failed"][0]
    assert failed["error"] == "mailbox full"
    assert failed["email"] == "dee@example.com"
    bounce = by_type["delivery.bounced"][0]
    assert bounce["bounce"] == "hard"
    assert bounce["email"] == "dee@example.com"
    assert by_type["delivery.complained"][0]["kind"] == "complaint"
    for data in by_type.values():
        for item in data:
            assert "secret" not in json.dumps(item)


async def test_retries_after_500s_then_succeeds(
    db: Database, database_url: str, hook: Receiver
) -> None:
    settings = webhook_settings(database_url)
    await endpoint(db, settings, hook, ["subscriber.created"])
    hook.script = [500, 503, 200]
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO subscriptions (id, email, name, status)"
            " VALUES (gen_random_uuid(), 'eve@example.com', 'Eve', 'pending_confirmation')"
        )
    sender = WebhookSender(db, settings.webhooks)
    try:
        await drain(sender, db)
    finally:
        await sender.aclose()
    assert len(hook.verified()) == 3
    ids = {r.headers["webhook-id"] for r in hook.requests}
    assert len(ids) == 1  # one message, the same webhook-id on every attempt
    [message] = await messages(db)
    assert message["status"] == "delivered"
    assert message["attempts"] == 3
    async with db.connection() as conn:
        attempts = await conn.fetch(
            "SELECT status_code, error, length(response_excerpt) AS n FROM webhook_attempts"
            " ORDER BY id"
        )
    assert [a["status_code"] for a in attempts] == [500, 503, 200]
    assert attempts[0]["error"] == "HTTP 500"
    assert all(a["n"] <= 500 for a in attempts)  # the receiver's long body: an excerpt


async def test_a_receiver_that_hangs_times_out(
    db: Database, database_url: str, hook: Receiver
) -> None:
    settings = webhook_settings(database_url, timeout_seconds=0.5, retry_base_seconds=60)
    await endpoint(db, settings, hook, ["subscriber.created"])
    hook.script = ["hang"]
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO subscriptions (id, email, name, status)"
            " VALUES (gen_random_uuid(), 'fay@example.com', 'Fay', 'pending_confirmation')"
        )
    sender = WebhookSender(db, settings.webhooks)
    try:
        assert await sender.turn() == 1
    finally:
        await sender.aclose()
    [message] = await messages(db)
    assert message["status"] == "pending"  # retried later
    assert message["last_error"] == "no answer within 0.5 s"


async def test_redirects_are_not_followed(db: Database, database_url: str, hook: Receiver) -> None:
    settings = webhook_settings(database_url, max_attempts=1)
    await endpoint(db, settings, hook, ["subscriber.created"])
    hook.default = "redirect"
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO subscriptions (id, email, name, status)"
            " VALUES (gen_random_uuid(), 'gus@example.com', 'Gus', 'pending_confirmation')"
        )
    sender = WebhookSender(db, settings.webhooks)
    try:
        await drain(sender, db)
    finally:
        await sender.aclose()
    [message] = await messages(db)
    assert message["status"] == "failed"
    assert message["last_status"] == 302
    assert "https://elsewhere.test/" in str(message["last_error"])
    assert len(hook.requests) == 1


async def test_an_endpoint_that_keeps_failing_is_disabled_then_replayed(
    db: Database, database_url: str, hook: Receiver
) -> None:
    settings = webhook_settings(
        database_url, max_attempts=2, disable_after_hours=0, disable_after_failures=4, batch_size=1
    )
    endpoint_id = await endpoint(db, settings, hook, ["subscriber.created"])
    hook.default = 500
    async with db.connection() as conn:
        for n in range(5):
            await conn.execute(
                "INSERT INTO subscriptions (id, email, name, status) VALUES"
                " (gen_random_uuid(), $1, 'X', 'pending_confirmation')",
                f"x{n}@example.com",
            )
    sender = WebhookSender(db, settings.webhooks)
    service = WebhookService(db, settings)
    try:
        await drain(sender, db)
        found = await service.get(endpoint_id)
        assert not found.enabled
        assert found.auto_disabled
        assert "4 attempts in a row failed" in (found.disabled_reason or "")
        assert len(hook.requests) == 4  # no attempt after the fourth failure
        rows = await messages(db)
        assert {m["status"] for m in rows} == {"failed"}
        assert any(
            m["last_error"] == "endpoint disabled before this message was sent" for m in rows
        )
        # Replay is refused while the endpoint is disabled…
        with pytest.raises(Conflict):
            await service.replay(endpoint_id, int(rows[0]["id"]))  # type: ignore[call-overload]
        # …and works once it is enabled again and the receiver is fixed.
        enabled = await service.set_enabled(endpoint_id, enabled=True)
        assert enabled.enabled
        assert enabled.disabled_reason is None
        assert enabled.consecutive_failures == 0
        hook.default = 200
        await service.replay(endpoint_id, int(rows[0]["id"]))  # type: ignore[call-overload]
        await drain(sender, db)
    finally:
        await sender.aclose()
    message, attempts = await service.message(endpoint_id, int(rows[0]["id"]))  # type: ignore[call-overload]
    assert message.status is MessageStatus.DELIVERED
    assert attempts[0].status_code == 200  # newest first
    assert hook.verified()[-1]["data"]["email"] == "x0@example.com"
    with pytest.raises(Conflict):  # a delivered message is not replayed
        await service.replay(endpoint_id, message.id)


async def test_a_lost_lease_drops_the_stale_outcome(
    db: Database, database_url: str, hook: Receiver
) -> None:
    from herald.webhooks import repository
    from herald.webhooks.domain import AttemptResult

    settings = webhook_settings(database_url)
    await endpoint(db, settings, hook, ["subscriber.created"])
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO subscriptions (id, email, name, status)"
            " VALUES (gen_random_uuid(), 'hal@example.com', 'Hal', 'pending_confirmation')"
        )
        first, second = uuid.uuid4(), uuid.uuid4()
        [claimed] = await repository.claim_due(conn, 10, 0.0, first)  # lease over at once
        [again] = await repository.claim_due(conn, 10, 60.0, second)
        assert again.id == claimed.id
        assert again.attempts == 2
        ok = AttemptResult(200, "", "", 1)
        stale = await repository.record_attempt(
            conn, claimed, first, ok, status=MessageStatus.DELIVERED, retry_in=0, error=""
        )
        assert stale is False
        fresh = await repository.record_attempt(
            conn, again, second, ok, status=MessageStatus.DELIVERED, retry_in=0, error=""
        )
        assert fresh is True
        assert await conn.fetchval("SELECT count(*) FROM webhook_attempts") == 1


async def test_concurrent_senders_send_each_message_once(
    db: Database, database_url: str, hook: Receiver
) -> None:
    settings = webhook_settings(database_url, batch_size=7)
    await endpoint(db, settings, hook, ["subscriber.created"])
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO subscriptions (id, email, name, status)"
            " SELECT gen_random_uuid(), 'c' || g || '@example.com', 'C', 'pending_confirmation'"
            " FROM generate_series(1, 60) g"
        )
    senders = [WebhookSender(db, settings.webhooks) for _ in range(3)]
    try:
        await asyncio.gather(*(drain(sender, db) for sender in senders))
    finally:
        for sender in senders:
            await sender.aclose()
    ids = [r.headers["webhook-id"] for r in hook.requests]
    assert len(hook.verified()) == 60
    assert len(set(ids)) == 60  # no message sent twice


async def test_a_hanging_receiver_does_not_hold_up_the_others(
    db: Database, database_url: str, hook: Receiver
) -> None:
    """The worker's loop fills a slot as soon as a send ends: a receiver that never
    answers holds its own messages' slots until the timeout, not the other endpoint's."""
    settings = webhook_settings(database_url, batch_size=8, timeout_seconds=5.0)
    async with receiver() as stuck:
        stuck.default = "hang"
        stuck_id = await endpoint(db, settings, stuck, ["subscriber.created"])
        await endpoint(db, settings, hook, ["subscriber.created"])
        async with db.connection() as conn:
            await conn.execute(
                "INSERT INTO subscriptions (id, email, name, status)"
                " SELECT gen_random_uuid(), 'h' || g || '@example.com', 'H',"
                " 'pending_confirmation' FROM generate_series(1, 6) g"
            )
        sender = WebhookSender(db, settings.webhooks)
        stop = asyncio.Event()
        running = asyncio.create_task(sender.run(stop))
        await hook.wait_for(6, timeout=30)
        async with db.connection() as conn:
            stuck_attempts = await conn.fetchval(
                "SELECT count(*) FROM webhook_attempts WHERE endpoint_id = $1", stuck_id
            )
        assert stuck_attempts == 0  # still waiting for the hung receiver meanwhile
        assert len(hook.verified()) == 6
        stop.set()
        await asyncio.wait_for(running, timeout=30)  # the sends in hand end by their timeout
    async with db.connection() as conn:
        errors = await conn.fetch(
            "SELECT DISTINCT error FROM webhook_attempts WHERE endpoint_id = $1", stuck_id
        )
    assert [r["error"] for r in errors] == ["no answer within 5 s"]


async def test_changes_of_different_fields_at_once_both_stay(
    db: Database, database_url: str, hook: Receiver
) -> None:
    """A partial change (the API's PATCH, the admin's "enable") reads and writes the
    endpoint in one transaction with its row locked: two made at the same time both
    stay, neither writes back the other's old value."""
    settings = webhook_settings(database_url)
    endpoint_id = await endpoint(db, settings, hook, ["subscriber.created"])
    service = WebhookService(db, settings)
    async with db.transaction() as holder:
        await holder.execute(
            "SELECT 1 FROM webhook_endpoints WHERE id = $1 FOR UPDATE", endpoint_id
        )
        described = asyncio.create_task(service.patch(endpoint_id, description="renamed"))
        disabled = asyncio.create_task(service.set_enabled(endpoint_id, enabled=False))
        async with db.connection() as probe:
            for _ in range(500):  # both changes wait on the row: neither has read it yet
                waiting = await probe.fetchval(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
                if waiting >= 2:
                    break
                await asyncio.sleep(0.01)
            assert waiting >= 2
    await asyncio.gather(described, disabled)
    found = await service.get(endpoint_id)
    assert found.description == "renamed"
    assert not found.enabled
    assert found.url == hook.url
    assert found.event_types == ("subscriber.created",)


async def test_a_partial_change_checks_only_what_it_is_given(
    db: Database, database_url: str, hook: Receiver
) -> None:
    settings = webhook_settings(database_url)
    endpoint_id = await endpoint(db, settings, hook, ["subscriber.created"])
    service = WebhookService(db, settings)
    with pytest.raises(ValidationError):
        await service.patch(endpoint_id, url="ftp://example.com/hook")
    with pytest.raises(ValidationError):
        await service.patch(endpoint_id, event_types=["no.such.event"])
    with pytest.raises(NotFound):
        await service.patch(uuid.uuid4(), enabled=False)
    changed = await service.patch(endpoint_id, event_types=["issue.sent", "issue.sent"])
    assert changed.event_types == ("issue.sent",)
    assert changed.url == hook.url
    assert changed.description == "test receiver"


async def test_concurrent_failures_disable_an_endpoint_exactly_once(
    db: Database, database_url: str, hook: Receiver
) -> None:
    """endpoint_failed judges the run of failures once, on the locked row: of 12 failures
    recorded at once past the limit, exactly one reports the endpoint just disabled, and
    every failure is counted. Within the time window nothing is disabled."""
    settings = webhook_settings(database_url)
    endpoint_id = await endpoint(db, settings, hook, ["subscriber.created"])

    async def fail(after_seconds: float) -> tuple[bool, bool, int]:
        async with db.transaction() as conn:
            return await repository.endpoint_failed(
                conn, endpoint_id, after_seconds=after_seconds, after_failures=3, reason="r"
            )

    patient = [await fail(3600) for _ in range(5)]
    assert [p[2] for p in patient] == [1, 2, 3, 4, 5]
    assert all(enabled and not disabled for disabled, enabled, _ in patient)
    outcomes = await asyncio.gather(*(fail(0) for _ in range(12)))
    assert sum(disabled for disabled, _, _ in outcomes) == 1
    assert sorted(failures for _, _, failures in outcomes) == list(range(6, 18))
    found = await WebhookService(db, settings).get(endpoint_id)
    assert not found.enabled
    assert found.disabled_reason == "r"
    assert found.consecutive_failures == 17
    assert [await fail(0) for _ in range(2)] == [(False, False, 18), (False, False, 19)]
