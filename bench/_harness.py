"""Pieces the delivery benchmarks share: an embedded Postgres in a temp dir, the standalone
Postmark sink, real ``herald worker`` processes, and per-process CPU and memory from /proc;
``--tracing``: an OTLP collector that every Herald process exports its spans to.

Everything listens on loopback or a unix socket and is torn down on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

import _report
from herald.core import migrate
from herald.core.db import quote_ident
from herald.core.embedded_pg import EmbeddedPostgres

REPO = Path(__file__).resolve().parent.parent
SINK = REPO / "tests" / "support" / "postmark_sink.py"
TOKEN = "bench-token"  # noqa: S105 - the local sink's token, not a secret
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def machine() -> str:
    """CPU model and count, for the record."""
    model = "unknown CPU"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    return f"{os.cpu_count()} vCPU, {model}"


@contextlib.contextmanager
def embedded_postgres(
    settings: Mapping[str, str] | None = None, *, keep: Path | None = None
) -> Iterator[EmbeddedPostgres]:
    """A throw-away cluster in a temp dir the unprivileged ``postgres`` user can reach, or,
    with ``keep``, the cluster in that directory (created on first use, stopped but left
    in place afterwards, so big databases can be reused by the next invocation)."""
    if keep is None:
        root = Path(tempfile.mkdtemp(prefix="herald-bench-"))
    else:
        root = keep.resolve()
        root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    server = EmbeddedPostgres(root, database="postgres", extra_settings=dict(settings or {}))
    try:
        server.start()
        yield server
    finally:
        server.stop()
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)


def postmaster_pid(server: EmbeddedPostgres) -> int:
    return int((server.pgdata / "postmaster.pid").read_text().split()[0])


def children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("PPid:") and int(line.split()[1]) == parent:
                    found.append(int(entry.name))
                    break
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far (vanished ones count 0)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            # The command name is in parentheses and may hold spaces: split after it.
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Sink:
    """The standalone sink process; ``/_sink/*`` reads its counters and steers its mode."""

    process: asyncio.subprocess.Process
    base_url: str

    @property
    def pid(self) -> int:
        return self.process.pid

    async def stats(self, *, recipients: bool = False) -> dict[str, Any]:
        query = "?recipients=1" if recipients else ""
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.base_url}/_sink/stats{query}") as response,
        ):
            response.raise_for_status()
            data: dict[str, Any] = await response.json()
            return data

    async def set_mode(self, mode: str, **options: object) -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{self.base_url}/_sink/mode", json={"mode": mode, **options}) as answer,
        ):
            answer.raise_for_status()


@contextlib.asynccontextmanager
async def postmark_sink(
    delay_ms: float = 0.0, *, count_recipients: bool = False
) -> AsyncIterator[Sink]:
    """The standalone sink (``tests/support/postmark_sink.py``) in its own process;
    ``count_recipients`` makes it count every accepted message per recipient (the drills)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SINK),
        "--port",
        "0",
        "--token",
        TOKEN,
        "--delay-ms",
        str(delay_ms),
        *(["--count-recipients"] if count_recipients else []),
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode().strip()
        if not line.startswith("READY "):
            raise RuntimeError(f"the sink did not start: {line!r}")
        yield Sink(process, line.removeprefix("READY "))
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 10)
        if process.returncode is None:
            process.kill()
            await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()


async def spawn_worker(env: Mapping[str, str], log_path: Path) -> asyncio.subprocess.Process:
    """One ``herald worker`` process, its output in ``log_path``."""
    with log_path.open("wb") as log_file:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "herald",
            "worker",
            env=dict(env),
            stdout=log_file,
            stderr=asyncio.subprocess.STDOUT,
        )


def worker_env(dsn: str, sink_url: str, data_dir: Path, **delivery: object) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    env.pop("DATABASE_URL", None)
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "HERALD_DATABASE_URL": dsn,
            "HERALD_DATA_DIR": str(data_dir),
            "HERALD_SECRET_KEY": "b" * 48,
            "HERALD_BASE_URL": "https://news.herald.test",
            "HERALD_LOG_FORMAT": "json",
            "HERALD_EMAIL__PROVIDER": "postmark",
            "HERALD_EMAIL__SENDER": "Herald Newsletter <newsletter@herald.test>",
            "HERALD_EMAIL__POSTMARK__BASE_URL": sink_url,
            "HERALD_EMAIL__POSTMARK__SERVER_TOKEN": TOKEN,
            # Generous for a loaded 2-core box, but below the default 60 s lease: a call
            # must never outlive the lease of the batch it carries (it would be sent twice).
            "HERALD_EMAIL__TIMEOUT_SECONDS": "30",
        }
    )
    env.update({f"HERALD_DELIVERY__{k.upper()}": str(v) for k, v in delivery.items()})
    return env


class Workers:
    """``herald worker`` processes, logging to files; ready once each logged its start."""

    def __init__(self, env: Mapping[str, str], logs: Path) -> None:
        self._env = dict(env)
        self._logs = logs
        self.processes: list[asyncio.subprocess.Process] = []
        self._files: list[Path] = []

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    async def start(self, count: int, timeout: float = 60) -> None:
        for _ in range(count):
            path = self._logs / f"worker-{len(self._files) + 1}.log"
            process = await spawn_worker(self._env, path)
            self.processes.append(process)
            self._files.append(path)
        deadline = time.monotonic() + timeout
        while not all("worker started" in p.read_text(errors="replace") for p in self._files):
            if time.monotonic() > deadline or any(p.returncode is not None for p in self.processes):
                raise RuntimeError("a worker did not start:\n" + self.log_tail())
            await asyncio.sleep(0.1)

    async def stop(self, timeout: float = 60) -> list[int]:
        for process in self.processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        codes = []
        for process in self.processes:
            try:
                codes.append(await asyncio.wait_for(process.wait(), timeout))
            except TimeoutError:
                process.kill()
                codes.append(await process.wait())
        return codes

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(
            f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
            for path in self._files
        )


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def create_database(admin_dsn: str, name: str) -> None:
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f"CREATE DATABASE {quote_ident(name)}")
    finally:
        await admin.close()


async def load_subscribers(dsn: str, count: int, *, label: str = "") -> None:
    """``count`` confirmed subscribers with ``COPY`` (reader{n}@example.com), then VACUUM
    ANALYZE."""
    conn = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        records = (
            (uuid.uuid4(), f"reader{n}@example.com", f"Reader {n}", "confirmed")
            for n in range(count)
        )
        await conn.copy_records_to_table(
            "subscriptions", records=records, columns=["id", "email", "name", "status"]
        )
        # The fan-out reads both (0018: each list's members); the mirror trigger filled
        # list_memberships, and a clone taken before autovacuum gets to it would read
        # every membership's heap page in the fan-out's index-only scan.
        await conn.execute("VACUUM ANALYZE subscriptions, list_memberships")
        prefix = f"{label}: " if label else ""
        log(f"{prefix}{count:,} subscribers loaded in {time.perf_counter() - started:.1f} s")
    finally:
        await conn.close()


async def migrated_database(admin_dsn: str, dsn: str, name: str, revision: str = "head") -> None:
    """Create database ``name`` (reached through ``dsn``) and migrate it to ``revision``."""
    await create_database(admin_dsn, name)
    await migrate.upgrade_async(dsn, revision)


# Plan nodes that only pass their input on: the node worth naming is below them.
PASS_THROUGH = frozenset({"Limit", "Aggregate", "Gather", "Gather Merge", "Sort"})


async def explain(
    conn: asyncpg.Connection, statement: str, args: tuple[Any, ...] | list[Any], runs: int
) -> tuple[str, float]:
    """``EXPLAIN (ANALYZE, BUFFERS)`` of ``statement`` ``runs`` times: the plan's top node
    past the pass-through ones and InitPlans (with its index, if any), and the median
    execution time in ms."""
    times, top = [], ""
    for _ in range(runs):
        plan = json.loads(
            await conn.fetchval(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {statement}", *args)
        )[0]
        times.append(plan["Execution Time"])
        node = plan["Plan"]
        while node["Node Type"] in PASS_THROUGH:
            inputs = [
                n for n in node.get("Plans", ()) if n.get("Parent Relationship") != "InitPlan"
            ]
            if not inputs:
                break
            node = inputs[0]
        top = node["Node Type"] + (f" on {node['Index Name']}" if "Index Name" in node else "")
    return top, statistics.median(times)


def py_spy_executable() -> str:
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(exe).exists():
        raise SystemExit("--py-spy needs py-spy on PATH or in the venv (bench/install-tools.sh)")
    return exe


async def start_py_spy(pid: int, output: Path) -> asyncio.subprocess.Process:
    """Record ``pid`` at 200 Hz as raw collapsed stacks (``bench/stacks.py`` reads them)."""
    return await asyncio.create_subprocess_exec(
        py_spy_executable(),
        "record",
        "--pid",
        str(pid),
        "--rate",
        "200",
        "--format",
        "raw",
        "--output",
        str(output),
        "--nonblocking",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def confirmed_subscribers(conn: Any) -> int:
    """How many deliveries publishing an issue will queue (the workers fan out after the
    publish request returns, so the request itself no longer knows)."""
    count: int = await conn.fetchval(
        "SELECT count(*) FROM subscriptions WHERE status = 'confirmed'"
    )
    return count


async def fan_out_seconds(conn: Any, issue_id: Any) -> float | None:
    """Publish commit → every recipient queued (``fanout_done_at``), from the issue row."""
    value = await conn.fetchval(
        "SELECT extract(epoch FROM fanout_done_at - published_at)::float8"
        " FROM newsletter_issues WHERE id = $1",
        issue_id,
    )
    return float(value) if value is not None else None


@dataclass(frozen=True)
class Probe:
    """One probe request: what, when it was due (monotonic), how long from then until the
    response was read, its status (0: socket error or timeout) and, for a failure, why."""

    what: str
    at: float
    latency: float
    status: int
    detail: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class Prober:
    """Watches a web process's responsiveness: every ``interval`` seconds (open loop: a
    round is due on its schedule whether or not the last one answered, so a stalled
    server cannot hide behind a waiting client) ``GET /health/ready``, ``GET /`` and, with
    ``subscribe``, a ``POST /subscriptions`` with a new address. Latency counts from the
    time the request was due."""

    def __init__(
        self, base_url: str, *, interval: float = 0.15, timeout: float = 10.0, subscribe: bool
    ) -> None:
        self.base_url = base_url
        self.interval = interval
        self.timeout = timeout
        self.subscribe = subscribe
        self.probes: list[Probe] = []
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._prefix = f"p2probe-{uuid.uuid4().hex[:8]}"

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> list[Probe]:
        self._stop.set()
        if self._task is not None:
            await self._task
        return sorted(self.probes, key=lambda p: p.at)

    async def _one(self, session: aiohttp.ClientSession, what: str, due: float, n: int) -> None:
        method, path = what.split(" ", 1)
        status, detail = 0, ""
        try:
            if method == "POST":
                form = {"name": f"Probe {n}", "email": f"{self._prefix}-{n}@example.com"}
                request = session.post(
                    self.base_url + path, data=form, headers={"Accept": "application/json"}
                )
            else:
                request = session.get(self.base_url + path)
            async with request as response:
                status = response.status
                body = await response.read()
                if not 200 <= status < 300:
                    detail = body.decode(errors="replace")[:200]
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            detail = f"{type(exc).__name__}: {exc}"[:200]
        self.probes.append(Probe(what, due, time.monotonic() - due, status, detail))

    async def _run(self) -> None:
        whats = ["GET /health/ready", "GET /"] + (["POST /subscriptions"] if self.subscribe else [])
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        pending: set[asyncio.Task[None]] = set()
        async with aiohttp.ClientSession(timeout=timeout) as session:
            start = time.monotonic()
            n = 0
            while not self._stop.is_set():
                due = start + n * self.interval
                delay = due - time.monotonic()
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), delay)
                    if self._stop.is_set():
                        break
                for what in whats:
                    task = asyncio.create_task(self._one(session, what, due, n))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                n += 1
            if pending:
                await asyncio.wait(pending)


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine spent busy so far (``/proc/stat``)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


class CpuTracker:
    """CPU seconds per process group since the tracker was created. A process keeps its
    last reading after it exits, so Postgres backends and autovacuum workers that come and
    go are counted (at most the time since a vanished process's last sample is lost:
    sample every second or so). ``other`` is what the rest of the machine used meanwhile
    (every core's busy time minus the groups and this process): other people's work on
    a shared machine shows up there."""

    def __init__(self, groups: Callable[[], dict[str, list[int]]]) -> None:
        self._groups = groups
        self._start: dict[int, float] = {}
        self._seen: dict[str, dict[int, float]] = {}
        for name, pids in groups().items():
            self._seen[name] = {pid: cpu_seconds([pid]) for pid in pids}
            self._start.update(self._seen[name])
        self._machine = machine_busy_seconds()
        self._me = cpu_seconds([os.getpid()])

    def sample(self) -> dict[str, float]:
        for name, pids in self._groups().items():
            seen = self._seen.setdefault(name, {})
            for pid in pids:  # a vanished process reads 0: keep the larger reading
                seen[pid] = max(seen.get(pid, 0.0), cpu_seconds([pid]))
        groups = {name: sum(self.per_process(name).values()) for name in self._seen}
        me = cpu_seconds([os.getpid()]) - self._me
        other = machine_busy_seconds() - self._machine - sum(groups.values()) - me
        return {name: round(v, 1) for name, v in {**groups, "other": max(0.0, other)}.items()}

    def per_process(self, group: str) -> dict[int, float]:
        return {pid: v - self._start.get(pid, 0.0) for pid, v in self._seen[group].items()}


@contextlib.asynccontextmanager
async def tracing_collector() -> AsyncIterator[Any]:
    """An OTLP/HTTP collector in this process (``tests/support/otlp.py``, counting the
    spans it decodes) and ``OTEL_EXPORTER_OTLP_ENDPOINT`` pointing at it, so every Herald
    process started meanwhile traces (the exporter's defaults otherwise: a batch every
    5 s or 512 spans). The sections go to ``bench/results/tracing/`` (or
    ``$HERALD_BENCH_RESULTS/tracing``): a traced run never replaces an untraced one."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from tests.support.otlp import OtlpReceiver

    _report.RESULTS = _report.RESULTS / "tracing"
    async with OtlpReceiver(keep=False) as collector:
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = collector.endpoint
        log(f"tracing on: Herald processes export to the collector at {collector.endpoint}")
        try:
            yield collector
        finally:
            os.environ.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
            received, exports = collector.received, collector.requests
            log(f"the collector received {received:,} spans in {exports:,} exports")


def run_traced(tracing: bool, main: Callable[[], Awaitable[int]]) -> int:
    """``asyncio.run(main())``, inside :func:`tracing_collector` when ``tracing``."""

    async def traced() -> int:
        if not tracing:
            return await main()
        async with tracing_collector():
            return await main()

    return asyncio.run(traced())


TRACING_HELP = (
    "trace every Herald process (OTLP to a collector in this process); "
    "sections go to bench/results/tracing/"
)
