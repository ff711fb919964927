"""The newcomer's first minute, with real processes: ``herald up`` on an embedded
Postgres, subscribe from the home page, find the email with ``herald outbox``,
follow its link, stop with SIGTERM."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import httpx

from herald.core.embedded_pg import EmbeddedPostgres
from tests.support.database import free_port
from tests.support.processes import (
    ADMIN_LOGIN,
    admin_login,
    herald_env,
    herald_process,
    outbox,
    wait_exit,
    wait_ready,
)
from tests.support.queue import wait_until
from tests.support.tmp import public_tmpdir

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
LINK = re.compile(r"http://\S+/subscriptions/confirm\?subscription_token=[A-Za-z0-9]+")


async def test_newcomer_flow_with_herald_up(tmp_path: Path) -> None:
    data_dir = public_tmpdir("herald-e2e-")
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = herald_env(HERALD_DATA_DIR=str(data_dir), HERALD_PORT=str(port))
    log_path = tmp_path / "up.log"
    async with herald_process("up", env=env, log_path=log_path) as up:
        await wait_ready(base_url)
        async with httpx.AsyncClient(base_url=base_url) as client:
            home = await client.get("/")
            assert home.status_code == 200
            assert 'action="/subscriptions"' in home.text

            subscribed = await client.post(
                "/subscriptions", data={"name": "New Comer", "email": "newcomer@example.com"}
            )
            assert subscribed.status_code == 200

            printed = ""

            async def link_printed() -> bool:
                nonlocal printed
                printed = await outbox(env, "newcomer@example.com")
                return LINK.search(printed) is not None

            await wait_until(link_printed, timeout=60, interval=0.1)
            assert "To: newcomer@example.com" in printed
            assert "Subject: Please confirm your subscription" in printed
            link = LINK.search(printed)
            assert link, printed
            assert link.group(0).startswith(base_url)

            page = await client.get("/dev/outbox")
            assert "newcomer@example.com" in page.text

            confirmed = await client.get(link.group(0))
            assert confirmed.status_code == 200
            assert "subscription confirmed" in confirmed.text

            # The first run printed the admin login exactly once: it works.
            printed_login = await admin_login(log_path)
            form = await client.get("/login")
            token = CSRF.search(form.text)
            assert token
            logged_in = await client.post(
                "/login",
                data={
                    "username": "admin",
                    "password": printed_login.group(1),
                    "csrf_token": token.group(1),
                },
            )
            assert logged_in.headers["location"] == "/admin/dashboard"
            assert "Welcome admin" in (await client.get("/admin/dashboard")).text

        up.send_signal(signal.SIGTERM)
        assert await wait_exit(up, 60) == 0, log_path.read_text()
    log = log_path.read_text()
    assert f"Herald is running at {base_url}" in log
    assert '"level": "error"' not in log, log
    assert not EmbeddedPostgres(data_dir).is_running(), "herald up stops its embedded Postgres"
    assert len(ADMIN_LOGIN.findall(log)) == 1
