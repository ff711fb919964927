"""Signing up to lists with real processes: ``herald serve`` behind a trusted proxy (the
consent IP is the one the app believes, as every throttle does) and ``herald worker``
sending the one confirmation email that confirms every list chosen; a single-opt-in list
alone needs no email."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import asyncpg
import httpx

from tests.support.database import free_port
from tests.support.processes import herald_env, herald_process, wait_exit, wait_ready
from tests.support.queue import wait_until

LINK = re.compile(r"http://\S+/subscriptions/confirm\?subscription_token=[A-Za-z0-9]+")


async def query(dsn: str, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def test_one_email_confirms_every_list_chosen_through_real_processes(
    database_url: str, tmp_path: Path
) -> None:
    await query(
        database_url,
        "INSERT INTO lists (slug, name, opt_in) VALUES ('weekly', 'Weekly', 'double'),"
        " ('events', 'Events', 'double'), ('news', 'News', 'single')",
    )
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = herald_env(
        HERALD_DATABASE_URL=database_url,
        HERALD_PORT=str(port),
        HERALD_BASE_URL=base_url,
        HERALD_SECRET_KEY="k" * 48,
        HERALD_DATA_DIR=str(tmp_path / "data"),
        HERALD_EMAIL__PROVIDER="outbox",
        HERALD_DELIVERY__POLL_INTERVAL_SECONDS="0.1",
    )
    async with (
        herald_process("serve", env=env, log_path=tmp_path / "serve.log") as serve,
        herald_process("worker", env=env, log_path=tmp_path / "worker.log") as worker,
    ):
        await wait_ready(base_url)
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
            signed_up = await client.post(
                "/subscriptions",
                content="name=Ann&email=ann%40example.com&list=weekly&list=events&source=l%2Fweekly",
                headers={
                    "content-type": "application/x-www-form-urlencoded",
                    "x-forwarded-for": "203.0.113.7",  # from 127.0.0.1, a trusted proxy
                    "user-agent": "E2E/1.0",
                },
            )
            assert signed_up.status_code == 200, signed_up.text
            single = await client.post(
                "/subscriptions", data={"name": "Bob", "email": "bob@example.com", "list": "news"}
            )
            assert single.status_code == 200

            async def sent() -> list[asyncpg.Record]:
                return await query(
                    database_url,
                    "SELECT recipient, text_body FROM outbox_messages ORDER BY id",
                )

            async def one_sent() -> bool:
                return len(await sent()) >= 1

            await wait_until(one_sent, timeout=60, interval=0.1)
            [message] = await sent()
            assert message["recipient"] == "ann@example.com"
            link = LINK.search(message["text_body"])
            assert link, message["text_body"]
            assert (await client.get(link.group(0))).status_code == 200
        serve.send_signal(signal.SIGTERM)
        worker.send_signal(signal.SIGTERM)
        assert await wait_exit(serve, 20) == 0
        assert await wait_exit(worker, 20) == 0

    rows = await query(
        database_url,
        "SELECT s.email, s.status AS address, l.slug, m.status, m.source, host(m.consent_ip) AS ip,"
        " m.consent_user_agent AS ua FROM list_memberships m JOIN lists l ON l.id = m.list_id"
        " JOIN subscriptions s ON s.id = m.subscriber_id ORDER BY s.email, l.slug",
    )
    assert [tuple(r) for r in rows] == [
        (
            "ann@example.com",
            "confirmed",
            "events",
            "confirmed",
            "form:l/weekly",
            "203.0.113.7",
            "E2E/1.0",
        ),
        (
            "ann@example.com",
            "confirmed",
            "weekly",
            "confirmed",
            "form:l/weekly",
            "203.0.113.7",
            "E2E/1.0",
        ),
        ("bob@example.com", "confirmed", "news", "confirmed", "form", "127.0.0.1", rows[2]["ua"]),
    ]
