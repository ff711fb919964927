"""I1: import a 1M-row CSV through the CLI, then export it, against a fresh embedded Postgres.

The CSV (email, name and two attribute columns) is generated once into the temp dir and
reused. ``herald subscribers import FILE --list default --mode confirmed`` runs as an
operator would run it, with no worker: the CLI uploads the file into ``job_files`` and
runs the job itself, so the process measured is the one that ran the job. Reported:
wall time, rows/s, the peak RSS of that process (``wait4``'s ``ru_maxrss``), its CPU
time and Postgres's. Then ``herald subscribers export`` (CSV, to a file): time and RSS.
Targets (issue 12): 1M rows ≤ 60 s on 2 cores, RSS ≤ 200 MB.

    .venv/bin/python bench/import.py [--rows 1000000] [--mode confirmed|opt-in]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from _harness import (
    CLOCK_TICKS,
    children,
    cpu_seconds,
    embedded_postgres,
    machine,
    migrated_database,
    postmaster_pid,
)

REPO = Path(__file__).resolve().parent.parent
HERALD = REPO / ".venv" / "bin" / "herald"
CITIES = ("Paris", "Oslo", "Lagos", "Lima", "Pune", "Kyoto", "Perth")
PLANS = ("free", "pro", "team")


def csv_path(rows: int) -> Path:
    path = Path(tempfile.gettempdir()) / f"herald-bench-import-{rows}.csv"
    if path.exists() and path.stat().st_size > 0:
        return path
    partial = path.with_suffix(".part")
    with partial.open("w", encoding="utf-8", newline="") as out:
        out.write("email,name,city,plan\r\n")
        for start in range(0, rows, 10_000):
            out.write(
                "".join(
                    f"reader{i}@example{i % 50}.com,Reader {i},{CITIES[i % 7]},{PLANS[i % 3]}\r\n"
                    for i in range(start, min(rows, start + 10_000))
                )
            )
    partial.rename(path)
    return path


@dataclass
class Measured:
    seconds: float
    max_rss_mib: float
    cpu_seconds: float
    postgres_cpu_seconds: float
    output: str


def postgres_cpu(postmaster: int) -> float:
    """CPU seconds of the server: the postmaster, its live backends, and the backends that
    exited (their time is added to the postmaster's ``cutime``/``cstime`` once reaped)."""
    fields = Path(f"/proc/{postmaster}/stat").read_text().rpartition(")")[2].split()
    own = sum(int(f) for f in fields[11:15]) / CLOCK_TICKS
    return own + cpu_seconds(children(postmaster))


def run_measured(args: list[str], env: dict[str, str], postmaster: int, stdout: int) -> Measured:
    """Run a ``herald`` command; its wall time, peak RSS and CPU (and Postgres's CPU)."""
    before_pg = postgres_cpu(postmaster)
    started = time.perf_counter()
    process = subprocess.Popen([str(HERALD), *args], env=env, stdout=stdout, stderr=subprocess.PIPE)
    assert process.stderr is not None
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    error = process.stderr.read().decode(errors="replace")
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"herald {' '.join(args)} failed ({process.returncode}):\n{error}")
    return Measured(
        seconds=seconds,
        max_rss_mib=usage.ru_maxrss / 1024,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        postgres_cpu_seconds=postgres_cpu(postmaster) - before_pg,
        output=error,
    )


async def counts(dsn: str) -> tuple[int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        subscribers = await conn.fetchval("SELECT count(*) FROM subscriptions")
        members = await conn.fetchval("SELECT count(*) FROM list_memberships")
    finally:
        await conn.close()
    return subscribers, members


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--mode", default="confirmed", choices=("confirmed", "opt-in"))
    args = parser.parse_args()
    source = csv_path(args.rows)
    print(f"{machine()}; load average {os.getloadavg()[0]:.2f}", file=sys.stderr)
    print(f"CSV: {source} ({source.stat().st_size / 2**20:.1f} MiB)", file=sys.stderr)
    with (
        tempfile.TemporaryDirectory(prefix="herald-bench-import-") as work,
        embedded_postgres() as server,
    ):
        name = "herald_import"
        dsn = server.dsn(name)
        asyncio.run(migrated_database(server.dsn("postgres"), dsn, name))
        env = {
            **os.environ,
            "HERALD_DATABASE_URL": dsn,
            "HERALD_DATA_DIR": str(Path(work) / "data"),
            "HERALD_LOG_LEVEL": "warning",
        }
        postmaster = postmaster_pid(server)
        imported = run_measured(
            [
                "subscribers",
                "import",
                str(source),
                "--list",
                "default",
                "--mode",
                args.mode,
                "--quiet",
            ],
            env,
            postmaster,
            subprocess.PIPE,
        )
        subscribers, members = asyncio.run(counts(dsn))
        with (Path(work) / "export.csv").open("wb") as sink:
            exported = run_measured(["subscribers", "export"], env, postmaster, sink.fileno())
        size = (Path(work) / "export.csv").stat().st_size
    print(
        f"import {args.rows:,} rows ({args.mode}): {imported.seconds:.1f} s, "
        f"{args.rows / imported.seconds:,.0f} rows/s, peak RSS {imported.max_rss_mib:.0f} MiB, "
        f"CLI CPU {imported.cpu_seconds:.1f} s, "
        f"Postgres CPU {imported.postgres_cpu_seconds:.1f} s; "
        f"{subscribers:,} subscribers, {members:,} memberships"
    )
    print(
        f"export {subscribers:,} rows (CSV, {size / 2**20:.0f} MiB): {exported.seconds:.1f} s, "
        f"{subscribers / exported.seconds:,.0f} rows/s, peak RSS {exported.max_rss_mib:.0f} MiB, "
        f"CLI CPU {exported.cpu_seconds:.1f} s, Postgres CPU {exported.postgres_cpu_seconds:.1f} s"
    )
    return 0 if subscribers == args.rows else 1


if __name__ == "__main__":
    raise SystemExit(main())
