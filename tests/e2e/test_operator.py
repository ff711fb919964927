"""The operator's set-up: any Postgres by URL, ``serve --workers 2`` plus a separate
``worker`` sending through a Postmark-compatible API."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import httpx

from tests.e2e.test_newcomer import wait_ready
from tests.support.database import free_port
from tests.support.postmark_sink import PostmarkSink
from tests.support.processes import herald_env, herald_process, wait_exit
from tests.support.queue import wait_until

LINK = re.compile(r"http://\S+/subscriptions/confirm\?subscription_token=[A-Za-z0-9]+")


async def test_serve_and_worker_processes_deliver_through_postmark(
    database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    async with PostmarkSink(token="server-token") as sink:
        env = herald_env(
            HERALD_DATABASE_URL=database_url,
            HERALD_PORT=str(port),
            HERALD_EMAIL__PROVIDER="postmark",
            HERALD_EMAIL__SENDER="news@herald-example.org",
            HERALD_EMAIL__POSTMARK__BASE_URL=sink.base_url,
            HERALD_EMAIL__POSTMARK__SERVER_TOKEN="server-token",
        )
        async with (
            herald_process(
                "serve", "--workers", "2", env=env, log_path=tmp_path / "serve.log"
            ) as serve,
            herald_process("worker", env=env, log_path=tmp_path / "worker.log") as worker,
        ):
            await wait_ready(base_url)
            async with httpx.AsyncClient(base_url=base_url) as client:
                response = await client.post(
                    "/subscriptions", json={"name": "Op", "email": "op@example.com"}
                )
                assert response.status_code == 200
                await wait_until(lambda: bool(sink.messages), timeout=60)
                [message] = sink.messages
                assert message["To"] == "op@example.com"
                assert message["From"] == "news@herald-example.org"
                link = LINK.search(message["TextBody"])
                assert link
                assert link.group(0) in message["HtmlBody"]
                confirmed = await client.get(link.group(0))
                assert confirmed.status_code == 200
            serve.send_signal(signal.SIGTERM)
            worker.send_signal(signal.SIGTERM)
            assert await wait_exit(serve, 30) == 0, (tmp_path / "serve.log").read_text()
            assert await wait_exit(worker, 30) == 0, (tmp_path / "worker.log").read_text()
