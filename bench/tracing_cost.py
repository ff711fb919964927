"""What tracing costs one ``POST /subscriptions``, in CPU time, without a load generator.

Throughput on a shared 2-core machine drifts by more than the few per cent tracing costs
(BENCHMARKS.md "With sampling"); CPU time spent by the web process itself does not. Per
mode, a fresh child process builds Herald's web app as ``herald serve`` does (production
settings, JSON logs to a file, ``start_tracing("herald-web")``), starts its lifespan and
calls it directly over ASGI (no server, no client library: the same bytes every time) with
``--requests`` subscriptions of distinct addresses, one at a time, after a warm-up. It
reports ``time.process_time()`` (every thread of the process: the span exporter's too)
per request, the main thread's share, user and system time, page faults and involuntary
context switches (``getrusage``). Modes, interleaved round by round (ABBA):

* ``off``: no ``OTEL_EXPORTER_OTLP_ENDPOINT`` (tracing not configured at all);
* ``unsampled``: endpoint set, ``OTEL_TRACES_SAMPLER=always_off`` (every request takes
  the unsampled path: what 99 % of requests cost at ratio 0.01);
* ``sampled``: endpoint set, ``always_on`` (the cost of one traced request, its export
  included);
* ``loaded`` (only when asked for): tracing off, but the SDK, the exporter and the
  instrumentations imported and a span processor's thread running, nothing patched: what
  the footprint alone costs;
* ``ratio-0.01`` (only when asked for with ``--mode``): endpoint set,
  ``parentbased_traceidratio`` 0.01, the draws seeded. A few hundred requests hold a
  handful of sampled ones or none: the summary's "at 0.01" line, 0.99 * unsampled +
  0.01 * sampled, is the better estimate.

The endpoint is an OTLP/HTTP receiver in the parent process (``tests/support/otlp.py``):
its decoding does not count. ``--profile DIR`` also writes a cProfile of each mode's
measured requests (last round) and prints, function by function, the calls per request
that differ from ``off``: call counts are exact, unlike timings::

    .venv/bin/python bench/tracing_cost.py --callgrind --rounds 2 --requests 200
    .venv/bin/python bench/tracing_cost.py                     # CPU time: 4 rounds of 2,000
    .venv/bin/python bench/tracing_cost.py --rounds 1 --profile /tmp/tracing-profiles

``--callgrind`` counts the instructions the process executes in the measured requests
under valgrind's callgrind (Debian's ``valgrind``), which a busy machine does not change:
two rounds agree to 0.05 %, where CPU time on this shared 2-core machine varies by 10 %.
Run it against a tree of your choice with ``PYTHONPATH=that/src`` (the child processes
inherit it; a before/after pair from ``git archive``). Compare modes within one
invocation: across invocations "off" itself moves by up to 0.5 %. ``VALGRIND_OPTS``
reaches valgrind: ``--separate-threads=yes`` splits the count by thread (the files in
``--profile DIR``), ``--cache-sim=yes`` adds simulated cache misses.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import json
import os
import pstats
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _harness import REPO, embedded_postgres, log, machine, migrated_database, worker_env

DATABASE = "herald_tracing_cost"
MODES: dict[str, dict[str, str]] = {
    "off": {},
    "unsampled": {"OTEL_TRACES_SAMPLER": "always_off"},
    "sampled": {"OTEL_TRACES_SAMPLER": "always_on"},
    "loaded": {},  # off, with the SDK, exporter and instrumentations imported, a span
    # processor's thread running, nothing configured or patched: the footprint alone
    "ratio-0.01": {
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.01",
    },
}
DEFAULT_MODES = ["off", "unsampled", "sampled"]
SEED = 20261205
CALLGRIND_VARIABLE = "HERALD_BENCH_CALLGRIND"


# -- the child: one mode, one process -------------------------------------------------


def _scope(body: bytes) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/subscriptions",
        "raw_path": b"/subscriptions",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"accept", b"text/html"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def _post(app: Any, prefix: str, n: int) -> int:
    body = f"name=Reader+{n}&email={prefix}-{n}%40example.com".encode()
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()  # never: the app reads the body once
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(_scope(body), receive, send)
    return status


def _load_the_sdk() -> Any:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    _LOADED.extend([provider, OpenTelemetryMiddleware, AsyncPGInstrumentor])
    _LOADED.append(AioHttpClientInstrumentor)
    return provider


_LOADED: list[Any] = []


def _callgrind(switch: str) -> None:
    """Count instructions from here (``on``) or no more (``off``), under ``--callgrind``."""
    if os.environ.get(CALLGRIND_VARIABLE):
        subprocess.run(
            ["callgrind_control", "--instr=" + switch, str(os.getpid())],
            check=True,
            capture_output=True,
        )


async def _child(args: argparse.Namespace) -> dict[str, Any]:
    from herald.composition.app import create_app
    from herald.composition.runtime import start_tracing
    from herald.core import tracing
    from herald.core.config import load_settings
    from herald.core.telemetry import configure_logging

    random.seed(SEED)
    settings = load_settings()
    configure_logging(settings)
    start_tracing("herald-web")
    if args.child == "loaded":
        _load_the_sdk()
    app = create_app(settings, dsn=args.dsn)
    prefix = f"{list(MODES).index(args.child)}-{args.round}"  # the same length in every mode
    async with app.router.lifespan_context(app):
        for n in range(args.warmup):
            await _post(app, prefix + "w", n)
        gc.collect()
        profiler = cProfile.Profile() if args.profile_to else None
        cpu, thread, wall = time.process_time(), time.thread_time(), time.perf_counter()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        collections = [generation["collections"] for generation in gc.get_stats()]
        _callgrind("on")
        if profiler is not None:
            profiler.enable()
        statuses: dict[int, int] = {}
        for n in range(args.requests):
            status = await _post(app, prefix, n)
            statuses[status] = statuses.get(status, 0) + 1
        if profiler is not None:
            profiler.disable()
        _callgrind("off")
        cpu, thread = time.process_time() - cpu, time.thread_time() - thread
        used = resource.getrusage(resource.RUSAGE_SELF)
        collections = [
            generation["collections"] - before
            for generation, before in zip(gc.get_stats(), collections, strict=True)
        ]
        wall = time.perf_counter() - wall
        if profiler is not None:
            profiler.dump_stats(args.profile_to)
    tracing.flush()
    return {
        "mode": args.child,
        "requests": args.requests,
        "statuses": statuses,
        "cpu_us": cpu / args.requests * 1e6,
        "main_thread_us": thread / args.requests * 1e6,
        "wall_us": wall / args.requests * 1e6,
        "user_us": (used.ru_utime - usage.ru_utime) / args.requests * 1e6,
        "system_us": (used.ru_stime - usage.ru_stime) / args.requests * 1e6,
        "page_faults": (used.ru_minflt - usage.ru_minflt) / args.requests,
        "context_switches": (used.ru_nivcsw - usage.ru_nivcsw) / args.requests,
        "gc_collections": collections,
        "gc_tracked": len(gc.get_objects()),
    }


# -- the parent: Postgres, the collector, the rounds ---------------------------------


def _run_child(
    mode: str, round_: int, dsn: str, endpoint: str, work: Path, args: argparse.Namespace
) -> dict[str, Any]:
    env = worker_env(dsn, "http://127.0.0.1:9", work / "data")
    env.update({"HERALD_ENV": "production", "HERALD_LOG_LEVEL": "info"})
    for name in list(env):
        if name.startswith("OTEL_"):
            del env[name]
    if mode not in ("off", "loaded"):
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
    env.update(MODES[mode])
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "bench"), env.get("PYTHONPATH", "")])
    env["PYTHONHASHSEED"] = "0"
    log_path = work / f"{mode}-{round_}.log"
    command = []
    if args.callgrind:
        env[CALLGRIND_VARIABLE] = "1"
        command = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={(args.profile or work) / f'{mode}-{round_}.callgrind'}",
        ]
    command += [
        sys.executable,
        __file__,
        "--child",
        mode,
        "--round",
        str(round_),
        "--dsn",
        dsn,
        "--requests",
        str(args.requests),
        "--warmup",
        str(args.warmup),
    ]
    if args.profile is not None and not args.callgrind:
        command += ["--profile-to", str(args.profile / f"{mode}.prof")]
    with log_path.open("wb") as stderr:
        done = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=stderr, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{mode}: exit {done.returncode}: {log_path.read_text()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    if args.callgrind:
        collected = re.search(r"Collected : (\d+)", log_path.read_text())
        assert collected is not None, log_path.read_text()[-2000:]
        result["instructions"] = int(collected.group(1)) / args.requests
    return result


def _calls_per_function(path: Path) -> dict[str, tuple[int, float]]:
    stats = pstats.Stats(str(path))
    table: dict[str, tuple[int, float]] = {}
    for (filename, line, name), row in stats.stats.items():  # type: ignore[attr-defined]
        calls, tottime = row[1], row[2]
        short = filename.split("site-packages/")[-1].split("/src/")[-1]
        table[f"{short}:{line}({name})"] = (calls, tottime)
    return table


def _profile_diff(directory: Path, base: str, other: str, requests: int, top: int) -> None:
    before = _calls_per_function(directory / f"{base}.prof")
    after = _calls_per_function(directory / f"{other}.prof")
    rows = []
    for key in before.keys() | after.keys():
        calls_before, time_before = before.get(key, (0, 0.0))
        calls_after, time_after = after.get(key, (0, 0.0))
        if calls_before != calls_after:
            rows.append(
                (
                    (time_after - time_before) / requests * 1e6,
                    (calls_after - calls_before) / requests,
                    key,
                )
            )
    rows.sort(key=lambda row: -abs(row[1]))
    print(f"\ncalls per request, {other} minus {base} ({len(rows)} functions differ):")
    print(f"{'calls':>8} {'own µs':>8}  function")
    for delta_us, delta_calls, key in rows[:top]:
        print(f"{delta_calls:>+8.2f} {delta_us:>+8.2f}  {key}")


def _describe(result: dict[str, Any]) -> str:
    text = (
        f"{result['cpu_us']:7.1f} µs CPU/request (main thread {result['main_thread_us']:.1f}, "
        f"user {result['user_us']:.1f}, system {result['system_us']:.1f}; "
        f"{result['page_faults']:.2f} page faults, "
        f"{result['context_switches']:.2f} involuntary switches; collections by generation "
        f"{result['gc_collections']}, {result['gc_tracked']:,} objects tracked), "
        f"statuses {result['statuses']}"
    )
    if "instructions" in result:
        text = f"{result['instructions'] / 1e6:.4f} M instructions/request, " + text
    return text


def _summary(results: dict[str, list[dict[str, Any]]], modes: list[str], rounds: int) -> None:
    print(f"\nPer POST /subscriptions, median of {rounds} rounds (min-max):")
    for key, unit, scale in (("instructions", "M instructions", 1e-6), ("cpu_us", "µs CPU", 1.0)):
        if key not in results[modes[0]][0]:
            continue
        base = statistics.median(r[key] for r in results[modes[0]]) * scale
        for mode in modes:
            values = [r[key] * scale for r in results[mode]]
            median = statistics.median(values)
            print(
                f"  {mode:>10}: {median:9.4f} {unit} ({min(values):.4f}-{max(values):.4f}), "
                f"{median - base:+.4f} ({(median / base - 1) * 100:+.1f} %) vs {modes[0]}"
            )
        if {"unsampled", "sampled"} <= set(modes):
            unsampled, sampled = (
                statistics.median(r[key] for r in results[mode]) * scale
                for mode in ("unsampled", "sampled")
            )
            estimate = 0.99 * unsampled + 0.01 * sampled
            print(
                f"  {'at 0.01':>10}: {estimate:9.4f} {unit} (0.99 * unsampled + 0.01 * sampled), "
                f"{estimate - base:+.4f} ({(estimate / base - 1) * 100:+.1f} %) vs {modes[0]}"
            )


async def _parent(args: argparse.Namespace) -> int:
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from tests.support.otlp import OtlpReceiver

    modes = args.mode or DEFAULT_MODES
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    log(f"{machine()}; {args.rounds} rounds * {args.requests} requests per mode: {modes}")
    results: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    with (
        embedded_postgres() as server,
        tempfile.TemporaryDirectory(prefix="herald-tracing-cost-") as tmp,
    ):
        work = Path(tmp)
        dsn = server.dsn(DATABASE)
        await migrated_database(server.dsn("postgres"), dsn, DATABASE)
        async with OtlpReceiver(keep=False) as collector:
            for round_ in range(args.rounds):
                for mode in modes if round_ % 2 == 0 else reversed(modes):
                    result = await asyncio.to_thread(
                        _run_child, mode, round_, dsn, collector.endpoint, work, args
                    )
                    results[mode].append(result)
                    log(f"round {round_} {mode:>10}: {_describe(result)}")
            log(f"the collector received {collector.received:,} spans")
    _summary(results, modes, args.rounds)
    if args.profile is not None and not args.callgrind:
        for mode in modes[1:]:
            _profile_diff(args.profile, modes[0], mode, args.requests, args.top)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--mode", action="append", choices=list(MODES), help="repeatable")
    parser.add_argument("--profile", type=Path, help="write cProfile stats here and diff them")
    parser.add_argument(
        "--callgrind",
        action="store_true",
        help="count instructions under valgrind's callgrind (exact; ~50x slower)",
    )
    parser.add_argument("--top", type=int, default=40, help="rows of the profile diff")
    parser.add_argument("--child", choices=list(MODES), help=argparse.SUPPRESS)
    parser.add_argument("--round", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--dsn", help=argparse.SUPPRESS)
    parser.add_argument("--profile-to", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is None:
        return asyncio.run(_parent(args))
    result = asyncio.run(_child(args))
    with contextlib.suppress(BrokenPipeError):
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
