"""The container image, built and run with podman: ``herald migrate``, a web and a worker
container against a Postgres, a subscription confirmed through the outbox, and SIGTERM ending
both with exit code 0 inside the grace period.

The tools come from Debian (deploy/container/install-tools.sh); the base image is made with
mmdebstrap (deploy/container/build-base.sh), since no container registry is reachable in CI.
Podman reads a configuration of the test's own (deploy/container/podman-conf.sh): the host's
is neither read nor changed. Images stay in /var/tmp/herald-podman, so reruns reuse the base
image and the build's layers.

The containers use the host's network; the session's Postgres listens on a unix socket only
its owner may use, so the test forwards a loopback TCP port to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import asyncpg
import httpx
import pytest

from herald.core.db import quote_ident
from tests.support.database import free_port, with_database
from tests.support.queue import wait_until
from tests.support.tmp import private_tmpdir

pytestmark = [pytest.mark.container, pytest.mark.slow, pytest.mark.timeout(1500)]

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / "deploy" / "container"
BASE_IMAGE = "localhost/herald-base:bookworm"
IMAGE = "localhost/herald:e2e"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
SIZE_BUDGET = 150 * 1000 * 1000  # bytes, uncompressed (podman's .Size)
GRACE_SECONDS = 30
IN_CI = os.environ.get("CI", "").lower() == "true"
LINK = re.compile(r"http://\S+/subscriptions/confirm\?subscription_token=[A-Za-z0-9_-]+")


def _unavailable(reason: str) -> None:
    """Skip on a developer's machine; in CI the image must be tested, so fail."""
    if IN_CI:
        pytest.fail(f"container test cannot run in CI: {reason}")
    pytest.skip(reason)


@dataclass
class Podman:
    env: dict[str, str]

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["podman", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def check(self, *args: str, timeout: float = 600) -> str:
        result = self.run(*args, timeout=timeout)
        assert result.returncode == 0, (
            f"podman {' '.join(args)} exited {result.returncode}:\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
        return result.stdout

    async def arun(self, *args: str, timeout: float = 120) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            "podman",
            *args,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
        assert process.returncode is not None
        return process.returncode, stdout.decode(), stderr.decode()

    async def acheck(self, *args: str, timeout: float = 120) -> str:
        code, out, err = await self.arun(*args, timeout=timeout)
        assert code == 0, f"podman {' '.join(args)} exited {code}:\n{out[-4000:]}\n{err[-4000:]}"
        return out


@pytest.fixture(scope="session")
def podman() -> Podman:
    if not sys.platform.startswith("linux"):
        pytest.skip("the container test needs Linux (podman with runc)")
    if os.geteuid() != 0:
        _unavailable("the container test runs podman as root (rootful); run it as root")
    install = subprocess.run(
        ["bash", str(TOOLS / "install-tools.sh")],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if install.returncode != 0 or not shutil.which("podman"):
        _unavailable(
            f"podman, runc and mmdebstrap could not be installed: {install.stderr[-2000:]}"
        )
    conf = private_tmpdir("herald-podman-conf-")
    subprocess.run(["bash", str(TOOLS / "podman-conf.sh"), str(conf)], check=True, timeout=60)
    env = {
        **os.environ,
        "CONTAINERS_CONF": str(conf / "containers.conf"),
        "CONTAINERS_STORAGE_CONF": str(conf / "storage.conf"),
    }
    base = subprocess.run(
        ["bash", str(TOOLS / "build-base.sh"), BASE_IMAGE],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert base.returncode == 0, f"building the base image failed:\n{base.stderr[-4000:]}"
    podman = Podman(env)
    # Containers a killed earlier run left behind (their records outlive the run).
    names = podman.run("ps", "--all", "--filter=name=^herald-e2e-", "--format={{.Names}}")
    for name in names.stdout.split():
        podman.run("rm", "--force", "--time=0", name)
    return podman


@pytest.fixture(scope="session")
def image(podman: Podman) -> str:
    volumes = []
    if HOST_CA_BUNDLE.exists():  # HTTPS may go through a proxy only the host's bundle trusts
        volumes = ["--volume", f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro"]
    started = time.monotonic()
    podman.check(
        "build",
        "--format=docker",  # OCI image configs cannot hold HEALTHCHECK
        "--network=host",
        *volumes,
        f"--build-arg=BASE_IMAGE={BASE_IMAGE}",
        f"--tag={IMAGE}",
        str(ROOT),
        timeout=1200,
    )
    print(f"\ncontainer image built in {time.monotonic() - started:.0f} s")
    # Old builds' layers go; a day's worth stay as the build cache.
    podman.run("image", "prune", "--force", "--filter=until=24h")
    return IMAGE


class UnixSocketForwarder:
    """127.0.0.1:PORT -> a unix socket, for containers that cannot reach the socket."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> UnixSocketForwarder:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(self.socket_path)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(OSError):
                dst.close()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            self._writers.difference_update((writer, up_writer))


@contextlib.asynccontextmanager
async def container_database(pg_admin_dsn: str) -> AsyncIterator[str]:
    """An empty database (``herald migrate`` in the image builds it) and its URL as the
    containers see it."""
    name = f"herald_container_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(pg_admin_dsn)
    try:
        await conn.execute(f"CREATE DATABASE {quote_ident(name)}")
    finally:
        await conn.close()
    try:
        dsn = with_database(pg_admin_dsn, name)
        parts = urlsplit(dsn)
        query = parse_qs(parts.query)
        socket_dir = (query.get("host") or [parts.hostname or ""])[0]
        if not socket_dir.startswith("/"):
            yield dsn  # a TCP server: the host network reaches it as it is
            return
        port = (query.get("port") or [str(parts.port or 5432)])[0]
        async with UnixSocketForwarder(f"{socket_dir}/.s.PGSQL.{port}") as forwarder:
            user = quote(parts.username or "postgres")
            password = f":{quote(parts.password)}" if parts.password else ""
            yield f"postgresql://{user}{password}@127.0.0.1:{forwarder.port}/{name}"
    finally:
        conn = await asyncpg.connect(pg_admin_dsn)
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")
        finally:
            await conn.close()


async def wait_ready(base_url: str, timeout: float) -> float:
    """Seconds until GET /health/ready answers 200."""
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=base_url, timeout=2, trust_env=False) as client:

        async def ready() -> bool:
            try:
                return (await client.get("/health/ready")).status_code == 200
            except httpx.TransportError:
                return False

        await wait_until(ready, timeout=timeout, interval=0.02)
    return time.monotonic() - started


async def test_image_runs_migrate_web_and_worker_and_stops_cleanly(
    podman: Podman, image: str, pg_admin_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    size = int((await podman.acheck("image", "inspect", "--format={{.Size}}", image)).strip())
    config = json.loads(await podman.acheck("image", "inspect", image))[0]["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["herald"]
    assert config["StopSignal"] == "SIGTERM"

    suffix = uuid.uuid4().hex[:8]
    web, worker = f"herald-e2e-web-{suffix}", f"herald-e2e-worker-{suffix}"
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    async with container_database(pg_admin_dsn) as database_url:
        settings = {
            "HERALD_DATABASE_URL": database_url,
            "HERALD_PORT": str(port),
            "HERALD_BASE_URL": base_url,
            "HERALD_SECRET_KEY": "container-e2e-" + "k" * 40,
            "HERALD_LOG_FORMAT": "json",
            "HERALD_DELIVERY__POLL_INTERVAL_SECONDS": "0.5",
            # CI shares 2 cores with the build and the forwarder: 3 s defaults can run out.
            "HERALD_DB__CONNECT_TIMEOUT_SECONDS": "15",
            "HERALD_DB__ACQUIRE_TIMEOUT_SECONDS": "15",
        }
        # As deploy/compose.yaml runs it: read-only root, no capabilities, no new privileges.
        run_args = [
            "--network=host",
            "--read-only",
            "--tmpfs=/tmp",
            "--cap-drop=ALL",
            "--security-opt=no-new-privileges",
            "--health-interval=disable",  # no systemd timers here; checked by hand below
            *(f"--env={key}={value}" for key, value in settings.items()),
        ]

        async def herald(*args: str) -> str:
            code, out, err = await podman.arun("run", "--rm", *run_args, image, *args)
            assert code == 0, f"herald {' '.join(args)} in the image exited {code}:\n{err}"
            return out

        try:
            await herald("migrate")
            await herald("migrate")  # idempotent
            for name, command in ((web, "serve"), (worker, "worker")):
                await podman.acheck("create", f"--name={name}", *run_args, image, command)
            started = time.monotonic()
            await podman.acheck("start", web)
            await wait_ready(base_url, timeout=60)
            start_to_ready = time.monotonic() - started
            await podman.acheck("start", worker)

            email = f"container-{suffix}@example.com"
            async with httpx.AsyncClient(base_url=base_url, timeout=10, trust_env=False) as client:
                response = await client.post(
                    "/subscriptions", json={"name": "Container", "email": email}
                )
                assert response.status_code == 200, response.text

                messages: list[dict[str, str]] = []

                async def delivered() -> bool:
                    out = await herald("outbox", "--json", "--to", email)
                    messages[:] = [json.loads(line) for line in out.splitlines() if line]
                    return bool(messages)

                await wait_until(delivered, timeout=90, interval=0.5)
                [message] = messages
                link = LINK.search(message["text"])
                assert link, message["text"]
                assert link.group(0).startswith(base_url)
                confirmed = await client.get(link.group(0))
                assert confirmed.status_code == 200, confirmed.text

            for name in (web, worker):
                code, out, err = await podman.arun("healthcheck", "run", name)
                assert code == 0, f"healthcheck of {name}: {out}{err}"

            stopped_at = time.monotonic()
            stops = await asyncio.gather(
                podman.arun("stop", f"--time={GRACE_SECONDS}", web, timeout=GRACE_SECONDS + 30),
                podman.arun("stop", f"--time={GRACE_SECONDS}", worker, timeout=GRACE_SECONDS + 30),
            )
            stop_seconds = time.monotonic() - stopped_at
            for (code, _out, err), name in zip(stops, (web, worker), strict=True):
                assert code == 0, f"podman stop {name}: {err}"
            assert stop_seconds < GRACE_SECONDS, f"stopping took {stop_seconds:.1f} s (SIGKILL?)"
            for name in (web, worker):
                state = await podman.acheck("inspect", "--format={{.State.ExitCode}}", name)
                _code, out, err = await podman.arun("logs", name)
                assert state.strip() == "0", (
                    f"{name} exited {state.strip()}:\n{(out + err)[-4000:]}"
                )
        except BaseException:
            for name in (web, worker):  # what the containers said, for the failure report
                logs = podman.run("logs", name)
                sys.stderr.write(f"--- podman logs {name}\n{(logs.stdout + logs.stderr)[-6000:]}\n")
            raise
        finally:
            podman.run("rm", "--force", "--time=0", web, worker)

    assert size <= SIZE_BUDGET, f"image is {size / 1e6:.1f} MB, budget {SIZE_BUDGET / 1e6:.0f} MB"
    report = (
        f"container image {image}: {size / 1e6:.1f} MB uncompressed; "
        f"web start to ready {start_to_ready:.2f} s; SIGTERM to exit 0 {stop_seconds:.1f} s"
    )
    with capsys.disabled():  # the numbers BENCHMARKS.md quotes, in the CI log too
        print(f"\n{report}")
