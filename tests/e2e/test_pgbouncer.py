"""Herald behind a real PgBouncer in transaction mode (Debian's package: 1.18 on bookworm).

With ``HERALD_DB__POOLER=transaction`` every pool goes through PgBouncer, while LISTEN,
migrations and the metrics gauge lock use ``HERALD_DIRECT_DATABASE_URL``: ``herald
migrate``, ``herald users create``, ``herald serve --workers 2`` and ``herald worker``
subscribe, confirm, publish and deliver through it. Polling is set to a minute, so the
emails can only go out in time if the workers' LISTEN (on the direct URL) wakes them.

PgBouncer comes from Debian (tests/support/install-pgbouncer.sh, when missing and we are
root); it refuses to run as root, so as root it runs as the embedded Postgres' user.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest

from herald.composition.metrics import GAUGE_LOCK_KEY
from herald.core.config import DatabaseSettings
from herald.core.db import Database, quote_ident
from herald.core.errors import Unavailable
from herald.email.outbox import list_messages
from tests.e2e.test_newcomer import wait_ready
from tests.support.auth import run_herald
from tests.support.database import free_port, with_database
from tests.support.newsletters import PASSWORD, log_in, newsletter_form
from tests.support.processes import herald_env, herald_process, wait_exit
from tests.support.queue import wait_until
from tests.support.tmp import public_tmpdir

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
INSTALL = ROOT / "tests" / "support" / "install-pgbouncer.sh"
IN_CI = os.environ.get("CI", "").lower() == "true"
RUN_AS = "postgres"  # the embedded Postgres' user when tests run as root
LINK = re.compile(r"http://\S+/subscriptions/confirm\?subscription_token=[A-Za-z0-9_-]+")
# What Herald must never log behind the pooler: the failures of session state through it.
POOLER_FAILURES = re.compile(
    r"prepared statement|unsupported startup parameter|no statement_timeout", re.IGNORECASE
)
# The pooler gives its server connections the timeouts Herald cannot send through it.
CONNECT_QUERY = "SET statement_timeout = 15000; SET idle_in_transaction_session_timeout = 60000"


def _unavailable(reason: str) -> None:
    """Skip on a developer's machine; in CI PgBouncer must be tested, so fail."""
    if IN_CI:
        pytest.fail(f"the PgBouncer test cannot run in CI: {reason}")
    pytest.skip(reason)


def _pgbouncer_binary() -> str:
    def found() -> str | None:
        return shutil.which("pgbouncer") or next(
            (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if Path(p).is_file()), None
        )

    binary = found()
    if binary is None:
        if not sys.platform.startswith("linux") or shutil.which("apt-get") is None:
            _unavailable("PgBouncer is not installed and this is no Debian (apt) system")
        if os.geteuid() != 0:
            _unavailable("PgBouncer is not installed; as root this test installs Debian's")
        install = subprocess.run(
            ["bash", str(INSTALL)], capture_output=True, text=True, timeout=600, check=False
        )
        binary = found()
        if install.returncode != 0 or binary is None:
            _unavailable(f"PgBouncer could not be installed: {install.stderr[-2000:]}")
    assert binary is not None
    return binary


async def _output(*command: str) -> str:
    process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE)
    stdout, _ = await process.communicate()
    assert process.returncode == 0, command
    return stdout.decode()


@dataclass(frozen=True)
class Bouncer:
    url: str  # through PgBouncer
    log: Path
    version: str


@contextlib.asynccontextmanager
async def pgbouncer(direct: str) -> AsyncIterator[Bouncer]:
    """A PgBouncer in transaction mode, on a free loopback port, in front of ``direct``
    (fewer server connections than Herald has clients, so they really are shared)."""
    binary = _pgbouncer_binary()
    parts = urlsplit(direct)
    query = parse_qs(parts.query)
    host = (query.get("host") or [parts.hostname or "localhost"])[0]
    server_port = (query.get("port") or [str(parts.port or 5432)])[0]
    database = parts.path.lstrip("/")
    password = f" password={parts.password}" if parts.password else ""
    port = free_port()
    work = public_tmpdir("herald-pgbouncer-")
    log = work / "pgbouncer.log"
    (work / "pgbouncer.ini").write_text(
        f"[databases]\n"
        f"{database} = host={host} port={server_port} dbname={database} "
        f"user={parts.username or 'postgres'}{password} connect_query='{CONNECT_QUERY}'\n"
        f"[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = any\npool_mode = transaction\ndefault_pool_size = 4\n"
        f"max_client_conn = 200\nlogfile = {log}\n",
        encoding="utf-8",
    )
    run_as: list[str] = []
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam(RUN_AS)
        except KeyError:
            _unavailable(f"PgBouncer refuses to run as root and there is no {RUN_AS!r} user")
        os.chown(work, user.pw_uid, user.pw_gid)
        run_as = ["-u", RUN_AS]
    version = (await _output(binary, "--version")).splitlines()[0]
    with (work / "stderr.log").open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            binary, *run_as, str(work / "pgbouncer.ini"), stdout=stderr, stderr=stderr
        )
    try:

        def listening() -> bool:
            assert process.returncode is None, (work / "stderr.log").read_text() + (
                log.read_text() if log.exists() else ""
            )
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                return True
            return False

        await wait_until(listening, timeout=10)
        yield Bouncer(f"postgresql://postgres@127.0.0.1:{port}/{database}", log, version)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        await process.wait()


@contextlib.asynccontextmanager
async def empty_database(pg_admin_dsn: str) -> AsyncIterator[str]:
    """A database of its own, without schema (``herald migrate`` builds it)."""
    name = f"herald_pgbouncer_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(pg_admin_dsn)
    try:
        await admin.execute(f"CREATE DATABASE {quote_ident(name)}")
        yield with_database(pg_admin_dsn, name)
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")
        await admin.close()


async def gauge_lock_holders(direct: str) -> list[str]:
    """``application_name`` of the sessions holding the metrics gauge lock."""
    conn = await asyncpg.connect(direct)
    try:
        rows = await conn.fetch(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1 AND l.objid = $2",
            GAUGE_LOCK_KEY >> 32,
            GAUGE_LOCK_KEY & 0xFFFF_FFFF,
        )
        return [row[0] for row in rows]
    finally:
        await conn.close()


async def controls(bouncer: Bouncer) -> None:
    """What Herald works around, seen through this PgBouncer: without the pooler setting
    the pool cannot even connect, and a session advisory lock is "held" twice."""
    with pytest.raises(Unavailable, match="unsupported startup parameter"):
        await Database.open(bouncer.url, DatabaseSettings(), "herald-control")
    first = await asyncpg.connect(bouncer.url, statement_cache_size=0)
    second = await asyncpg.connect(bouncer.url, statement_cache_size=0)
    try:
        key = 0x7E57  # any key Herald does not use
        assert await first.fetchval("SELECT pg_try_advisory_lock($1)", key)
        assert await second.fetchval("SELECT pg_try_advisory_lock($1)", key)
        await first.fetchval("SELECT pg_advisory_unlock_all()")
    finally:
        await first.close()
        await second.close()


async def test_subscribe_publish_and_deliver_through_pgbouncer_in_transaction_mode(
    pg_admin_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    async with empty_database(pg_admin_dsn) as direct, pgbouncer(direct) as bouncer:
        await controls(bouncer)
        port, serve_metrics, worker_metrics = free_port(), free_port(), free_port()
        base_url = f"http://127.0.0.1:{port}"
        common = {
            "HERALD_DATABASE_URL": bouncer.url,
            "HERALD_DIRECT_DATABASE_URL": direct,
            "HERALD_DB__POOLER": "transaction",
            "HERALD_PORT": str(port),
            "HERALD_BASE_URL": base_url,
            "HERALD_SECRET_KEY": "pgbouncer-e2e-" + "k" * 40,
            # No polling to speak of: only NOTIFY, heard on the direct URL, wakes the workers.
            "HERALD_DELIVERY__POLL_INTERVAL_SECONDS": "60",
            "HERALD_METRICS__GAUGE_INTERVAL_SECONDS": "1",
        }
        env = herald_env(**common)
        cli_output = ""

        migrated = await run_herald("migrate", env=env)
        assert migrated.returncode == 0, migrated.stderr
        assert "migrated to" in migrated.stdout
        cli_output += migrated.stdout + migrated.stderr

        serve_log, worker_log = tmp_path / "serve.log", tmp_path / "worker.log"
        async with (
            herald_process(
                "serve",
                "--workers",
                "2",
                env=herald_env(**common, HERALD_METRICS__PORT=str(serve_metrics)),
                log_path=serve_log,
            ) as serve,
            herald_process(
                "worker",
                "--concurrency",
                "2",
                env=herald_env(**common, HERALD_METRICS__PORT=str(worker_metrics)),
                log_path=worker_log,
            ) as worker,
        ):
            created, _ = await asyncio.gather(
                run_herald("users", "create", "admin", "--password-stdin", env=env, stdin=PASSWORD),
                wait_ready(base_url, timeout=60),
            )
            assert created.returncode == 0, created.stderr
            cli_output += created.stdout + created.stderr
            outbox = await asyncpg.connect(direct)
            try:

                async def messages(subject: str | None = None) -> dict[str, str]:
                    found = await list_messages(outbox)
                    return {m.recipient: m.text_body for m in found if subject in (None, m.subject)}

                readers = [f"reader{n}-{uuid.uuid4().hex[:6]}@example.com" for n in range(3)]
                async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
                    for response in await asyncio.gather(
                        *(
                            client.post("/subscriptions", json={"name": "R", "email": email})
                            for email in readers
                        )
                    ):
                        assert response.status_code == 200, response.text

                    async def confirmations_sent() -> bool:
                        return set(await messages()) == set(readers)

                    await wait_until(confirmations_sent, timeout=20, interval=0.1)
                    for text in (await messages()).values():
                        link = LINK.search(text)
                        assert link, text
                        assert (await client.get(link.group(0))).status_code == 200

                    await log_in(client)
                    title = f"Through the pooler {uuid.uuid4().hex[:6]}"
                    published = await client.post(
                        "/admin/newsletters",
                        data={
                            **await newsletter_form(client),
                            "title": title,
                            "text_content": "Hello through PgBouncer.",
                            "html_content": "<p>Hello through PgBouncer.</p>",
                        },
                    )
                    assert published.status_code == 303, published.text

                    async def issue_delivered() -> bool:
                        return set(await messages(title)) == set(readers)

                    await wait_until(issue_delivered, timeout=20, interval=0.1)
            finally:
                await outbox.close()

            # The gauge election holds its lock on a direct connection, once for all three
            # processes (through the pooler every process would "hold" it).
            async def one_leader() -> bool:
                return await gauge_lock_holders(direct) == ["herald-metrics"]

            await wait_until(one_leader, timeout=10, interval=0.1)

            listed = await run_herald("outbox", "--json", "--to", readers[0], env=env)
            assert listed.returncode == 0, listed.stderr
            assert len(listed.stdout.splitlines()) == 2, listed.stdout  # confirmation, issue
            cli_output += listed.stderr

            serve.send_signal(signal.SIGTERM)
            worker.send_signal(signal.SIGTERM)
            assert await wait_exit(serve, 30) == 0, serve_log.read_text()
            assert await wait_exit(worker, 30) == 0, worker_log.read_text()

        logs = serve_log.read_text() + worker_log.read_text() + cli_output
        failures = [line for line in logs.splitlines() if POOLER_FAILURES.search(line)]
        assert not failures, "\n".join(failures)
        assert f"login attempt: db={urlsplit(direct).path.lstrip('/')}" in bouncer.log.read_text()
        version = bouncer.version
    with capsys.disabled():
        print(f"\n{version} in transaction mode: e2e {time.monotonic() - started:.1f} s")
