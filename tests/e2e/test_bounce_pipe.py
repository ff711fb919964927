"""``herald bounces ingest`` as the MTA runs it: a real process, the bounce on standard
input, the exit status an MTA reads (0: done or unusable; 75: try again later)."""

from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path

import pytest

from herald.core.config import Settings
from herald.core.db import Database
from herald.email.verp import Verp
from tests.support.deliverability import enqueue_to_readers, sent_delivery
from tests.support.newsletters import add_subscribers
from tests.support.processes import HERALD, herald_env, herald_process
from tests.support.queue import wait_until
from tests.unit.email.test_smtp import serve

FIXTURES = Path(__file__).parent.parent / "fixtures" / "bounces"
PLACEHOLDER = b"bounces+42.0123456789abcdef@news.example.org"
BOUNCE_ADDRESS = "bounces@news.example.org"
EX_TEMPFAIL = 75


async def ingest(env: dict[str, str], raw: bytes, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *HERALD,
        "bounces",
        "ingest",
        *args,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(raw), timeout=60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


def pipe_env(database_url: str, tmp_path: Path, **overrides: str) -> dict[str, str]:
    settings = {
        "HERALD_DATABASE_URL": database_url,
        "HERALD_DATA_DIR": str(tmp_path / "data"),
        "HERALD_SECRET_KEY": "s" * 48,
        "HERALD_EMAIL__SMTP__BOUNCE_ADDRESS": BOUNCE_ADDRESS,
    }
    return herald_env(**(settings | overrides))


async def suppressed(db: Database, email: str) -> str | None:
    async with db.connection() as conn:
        reason: str | None = await conn.fetchval(
            "SELECT reason FROM suppressions WHERE address_key = herald_address_key($1)", email
        )
    return reason


@pytest.mark.slow
async def test_the_pipe_records_a_bounce_once_and_ignores_forgeries(
    database_url: str, db: Database, settings: Settings, tmp_path: Path
) -> None:
    readers = await add_subscribers(db, 2)
    mine = await sent_delivery(db, readers[0], "reader0@example.com")
    theirs = await sent_delivery(db, readers[1], "reader1@example.com")
    verp = Verp(settings, BOUNCE_ADDRESS)  # the test settings' key is the process's
    env = pipe_env(database_url, tmp_path)
    raw = (FIXTURES / "postfix_user_unknown.eml").read_bytes()

    code, out, err = await ingest(env, raw.replace(PLACEHOLDER, verp.address(mine).encode()))
    assert code == 0, err
    assert out.strip() == f"bounce recorded: delivery {mine}, hard_bounce (address suppressed)"
    assert await suppressed(db, "reader0@example.com") == "hard_bounce"

    # The MTA delivering it again (a retry after a lost answer): a replay.
    code, out, _ = await ingest(env, raw.replace(PLACEHOLDER, verp.address(mine).encode()))
    assert (code, out.strip()) == (0, f"bounce already recorded: delivery {mine}, hard_bounce")

    # Someone who saw their own return path tries it on another delivery: ignored, exit 0.
    signature = verp.address(mine).split(".", 1)[1].split("@")[0]
    forged = f"bounces+{theirs}.{signature}@news.example.org".encode()
    code, out, _ = await ingest(env, raw.replace(PLACEHOLDER, forged))
    assert code == 0
    assert out.startswith("bounce ignored: the return path's signature does not match")
    assert await suppressed(db, "reader1@example.com") is None

    # What is no bounce at all: exit 0, so the MTA does not offer it forever.
    code, out, _ = await ingest(env, b"Subject: hello\r\n\r\njust saying hi\r\n")
    assert (code, out.startswith("bounce ignored: the message is not a bounce")) == (0, True)


async def test_the_recipient_from_the_mta_and_an_oversized_bounce(
    database_url: str, db: Database, settings: Settings, tmp_path: Path
) -> None:
    [reader] = await add_subscribers(db, 1)
    delivery = await sent_delivery(db, reader, "reader0@example.com")
    verp = Verp(settings, BOUNCE_ADDRESS)
    raw = (FIXTURES / "exim_user_unknown.eml").read_bytes().replace(PLACEHOLDER, b"x@y.example")
    # 12 MiB of returned message after the report: read cut at 10 MiB, the rest drained.
    raw += b"X" * (12 * 1024 * 1024)
    env = pipe_env(database_url, tmp_path, ORIGINAL_RECIPIENT=verp.address(delivery))

    code, out, err = await ingest(env, raw)

    assert code == 0, err
    assert out.startswith(f"bounce recorded: delivery {delivery}, hard_bounce")


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
async def test_temporary_failures_exit_75_so_the_mta_keeps_the_bounce(
    database_url: str, settings: Settings, tmp_path: Path
) -> None:
    template = (FIXTURES / "postfix_user_unknown.eml").read_bytes()
    raw = template.replace(PLACEHOLDER, Verp(settings, BOUNCE_ADDRESS).address(7).encode())
    down = f"postgresql://herald:x@127.0.0.1:{closed_port()}/herald"
    env = pipe_env(down, tmp_path, HERALD_DB__CONNECT_TIMEOUT_SECONDS="2")

    code, _, err = await ingest(env, raw)
    assert code == EX_TEMPFAIL, err
    assert "not recorded now" in err
    # What cannot be used is known without the database: dropped all the same.
    code, out, _ = await ingest(env, template)
    assert code == 0
    assert out.startswith("bounce ignored: the return path's signature does not match")

    unconfigured = pipe_env(database_url, tmp_path)
    del unconfigured["HERALD_EMAIL__SMTP__BOUNCE_ADDRESS"]
    code, _, err = await ingest(unconfigured, raw)
    assert code == EX_TEMPFAIL
    assert "HERALD_EMAIL__SMTP__BOUNCE_ADDRESS is not set" in err

    invalid = pipe_env(database_url, tmp_path, HERALD_EMAIL__SMTP__BOUNCE_ADDRESS="a+b@x.org")
    code, _, err = await ingest(invalid, raw)
    assert code == EX_TEMPFAIL
    assert "must not contain '+'" in err


@pytest.mark.slow
async def test_a_worker_process_records_the_relays_refusal(
    database_url: str, db: Database, settings: Settings, tmp_path: Path
) -> None:
    """The composition root plugs the policy into the worker: a 550 at RCPT from the relay
    suppresses the reader; the accepted message went out with its signed return path."""
    readers = await add_subscribers(db, 2)
    ids = await enqueue_to_readers(db, readers)
    async with serve() as relay:
        relay.handler.rcpt_replies = {"reader0@example.com": "550 5.1.1 No such user"}
        env = pipe_env(
            database_url,
            tmp_path,
            HERALD_EMAIL__PROVIDER="smtp",
            HERALD_EMAIL__SMTP__HOST="127.0.0.1",
            HERALD_EMAIL__SMTP__PORT=str(relay.port),
            HERALD_EMAIL__SMTP__TLS="none",
            HERALD_DELIVERY__POLL_INTERVAL_SECONDS="0.1",
        )
        async with herald_process("worker", env=env, log_path=tmp_path / "w.log") as worker:

            async def settled() -> bool:
                return await suppressed(db, "reader0@example.com") == "hard_bounce" and bool(
                    relay.handler.delivered
                )

            await wait_until(settled, timeout=60)
            worker.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(worker.wait(), 30) == 0
        [(mail_from, _, _)] = relay.handler.delivered
    assert Verp(settings, BOUNCE_ADDRESS).delivery_of(mail_from) == ids[1]
    assert await suppressed(db, "reader1@example.com") is None
