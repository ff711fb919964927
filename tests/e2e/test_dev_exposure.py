"""``herald serve`` in development on every interface warns at start-up, and still serves
the development outbox to this machine (issue 8 item 13)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import httpx

from tests.e2e.test_newcomer import wait_ready
from tests.support.database import free_port
from tests.support.processes import herald_env, herald_process, wait_exit
from tests.support.tmp import public_tmpdir


async def test_a_development_server_on_every_interface_warns_at_start_up(
    database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = herald_env(
        HERALD_DATA_DIR=str(public_tmpdir("herald-exposed-")),
        HERALD_DATABASE_URL=database_url,
        HERALD_HOST="0.0.0.0",  # noqa: S104 - the case under test; requests go to 127.0.0.1
        HERALD_PORT=str(port),
    )
    log_path = tmp_path / "serve.log"
    async with herald_process("serve", env=env, log_path=log_path) as serve:
        await wait_ready(f"http://127.0.0.1:{port}")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/dev/outbox")).status_code == 200
        serve.send_signal(signal.SIGTERM)
        assert await wait_exit(serve, 60) == 0
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    warnings = [line for line in lines if line.get("level") == "warning"]
    assert any(
        "development mode is listening on 0.0.0.0" in line["event"]
        and "/dev/outbox" in line["event"]
        for line in warnings
    ), log_path.read_text()
