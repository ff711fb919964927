"""P2's section of BENCHMARKS.md (``bench/million.py``): tables, targets and verdicts.

The section has two parts: the default run (``make bench``: 100k vs 1M) and the
``--huge`` run (100k vs 10M, too long for ``make bench``). Each run writes its own part
(``bench/results/P2-default.md`` / ``P2-huge.md``) and ``P2.md`` joins them; a part that
was not measured on this machine is carried over from BENCHMARKS.md as it stands.
"""

from __future__ import annotations

import json
import platform
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import _report
from _harness import Probe, machine

BENCHMARKS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
BEGIN, END = "<!-- bench:begin", "<!-- bench:end -->"
HUGE_HEADING = "#### P2 at "
PUBLISH_TARGET_S = 1.0
RSS_TARGET_MIB = 150.0
WEB_MAX_MS = 1000.0  # "responsive": every probe answered 2xx within a second


def fan_out_target(size: int) -> float:
    """90 s at 10M (issue 8), scaled linearly: 9 s per million."""
    return 9.0 * size / 1_000_000


def delivered_target(size: int) -> float:
    """15 min at 10M (issue 8); never tighter than the 240 s the 1M run always had."""
    return max(240.0, 90.0 * size / 1_000_000)


@dataclass
class Context:
    small: int
    large: int
    runs: int
    pg_version: str
    workers: int
    batch_size: int
    probe_interval: float
    subscribe_probe: bool
    failures: list[str]
    commit: str


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def probe_stats(
    probes: Sequence[Probe], start: float | None = None, end: float | None = None
) -> dict[str, dict[str, Any]]:
    """Per probe kind: count, errors, p50/p99/max ms, for probes due in [start, end)."""
    kinds: dict[str, list[Probe]] = {}
    for p in probes:
        if (start is None or p.at >= start) and (end is None or p.at < end):
            kinds.setdefault(p.what, []).append(p)
    stats = {}
    for what, mine in kinds.items():
        ms = [p.latency * 1000 for p in mine]
        failed = [p for p in mine if not p.ok]
        stats[what] = {
            "count": len(mine),
            "errors": len(failed),
            "p50_ms": percentile(ms, 50),
            "p99_ms": percentile(ms, 99),
            "max_ms": max(ms),
            "first_error": f"{failed[0].status} {failed[0].detail}" if failed else "",
        }
    return stats


def chunk_seconds(chunks: Sequence[Sequence[float]], chunk: int) -> list[float]:
    """Seconds per ``chunk`` rows between successive polls of ``recipients`` (the first
    interval starts at ``published_at``, so it includes the workers' wake-up)."""
    out = []
    last_t, last_n = 0.0, 0.0
    for t, n in chunks:
        if n > last_n:
            out.append((t - last_t) * chunk / (n - last_n))
        last_t, last_n = t, n
    return out


def chunk_line(runs: Sequence[Any]) -> str:
    if all(r.recipients <= r.fan_out_chunk for r in runs):
        return f"one chunk (≤ {runs[0].fan_out_chunk:,} rows)"
    per_run = []
    for r in runs:
        seconds = chunk_seconds(r.chunks, r.fan_out_chunk)
        if not seconds:
            continue
        tenth = max(1, len(seconds) // 10)
        per_run.append(
            (
                statistics.median(seconds),
                statistics.median(seconds[:tenth]),
                statistics.median(seconds[-tenth:]),
                max(seconds),
                len(seconds),
            )
        )
    if not per_run:
        return "no fan-out progress was observed"
    med = [statistics.median(x[i] for x in per_run) for i in range(4)]
    early = statistics.median(r.sent_during_fan_out / r.recipients for r in runs)
    return (
        f"{runs[0].fan_out_chunk:,}-row chunks, seconds per chunk: median {med[0]:.2f}, "
        f"first tenth {med[1]:.2f}, last tenth {med[2]:.2f}, slowest {med[3]:.2f}; "
        f"{early:.0%} of the issue was sent before the fan-out ended"
    )


CPU_KEYS = ("workers", "postgres", "web", "sink", "other")


def cpu_text(values: Sequence[dict[str, float]], keys: Sequence[str]) -> str:
    return " / ".join(f"{statistics.median(v.get(k, 0.0) for v in values):.1f}" for k in keys)


def postgres_line(r: Any) -> str:
    """Where Postgres spent the fan-out of one run: CPU by backend type and the average
    number of sessions active in each statement (sampled every second)."""
    window = [labels for at, labels in r.activity if at <= r.fan_out_seconds]
    counts: dict[str, int] = {}
    for labels in window:
        for name in labels:
            counts[name] = counts.get(name, 0) + 1
    top = sorted(counts.items(), key=lambda item: -item[1])[:8]
    sessions = ", ".join(f"{name} {n / max(1, len(window)):.2f}" for name, n in top)
    cpu = ", ".join(
        f"{kind} {seconds:.0f} s"
        for kind, seconds in sorted(r.pg_cpu_fan_out.items(), key=lambda item: -item[1])
    )
    return (
        f"Postgres during the fan-out (run {r.run}, {r.fan_out_seconds:.0f} s): CPU by backend "
        f"type: {cpu}; average active sessions ({len(window)} samples): {sessions}; "
        f"{wal_text(r.wal, 'before', 'fan_out')}. Whole run: {wal_text(r.wal, 'before', 'end')}"
    )


def wal_text(points: dict[str, dict[str, float]], start: str, end: str) -> str:
    if start not in points or end not in points:
        return "WAL not measured"
    d = {k: points[end][k] - points[start][k] for k in points[start]}
    return (
        f"WAL {d['bytes'] / 2**30:.1f} GiB ({d['records'] / 1e6:.1f}M records, "
        f"{d['fpi'] / 1e3:,.0f}k full-page images), {d['timed'] + d['requested']:.0f} "
        f"checkpoints ({d['requested']:.0f} requested by WAL volume)"
    )


def all_probes(runs: Sequence[Any]) -> list[tuple[Probe, float]]:
    """Every probe of these runs with its run's fan-out time (at = s since the publish)."""
    return [(Probe(**p), r.fan_out_seconds) for r in runs for p in r.probes]


def web_cell(runs: Sequence[Any]) -> str:
    probes = [p for p, _ in all_probes(runs) if p.at >= 0]
    stats = probe_stats(probes)
    errors = sum(s["errors"] for s in stats.values())
    p99 = max((s["p99_ms"] for s in stats.values()), default=float("nan"))
    worst = max((s["max_ms"] for s in stats.values()), default=float("nan"))
    return f"{errors} / {p99:,.0f} / {worst:,.0f}"


def web_table(runs: Sequence[Any]) -> list[str]:
    pairs = all_probes(runs)
    base = probe_stats([p for p, _ in pairs if p.at < 0])
    whole = probe_stats([p for p, _ in pairs if p.at >= 0])
    during = probe_stats([p for p, fan in pairs if 0 <= p.at < fan])
    lines = [
        "| probe | before publish p50 / max ms | requests | errors | p50 ms | p99 ms "
        "| max ms | max ms during the fan-out |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for what, s in whole.items():
        b = base.get(what, {"p50_ms": float("nan"), "max_ms": float("nan")})
        d = during.get(what, {"max_ms": float("nan")})
        lines.append(
            f"| `{what}` | {b['p50_ms']:.1f} / {b['max_ms']:.0f} | {s['count']:,} "
            f"| {s['errors']} | {s['p50_ms']:.1f} | {s['p99_ms']:.0f} | {s['max_ms']:,.0f} "
            f"| {d['max_ms']:,.0f} |"
        )
        if s["first_error"]:
            lines.append(f"| | first error: {s['first_error'][:120]} | | | | | | |")
    return lines


def schemas(results: dict[int, list[Any]]) -> str:
    return ", ".join(sorted({r.schema for rs in results.values() for r in rs}))


def render(results: dict[int, list[Any]], c: Context, *, huge: bool) -> str:
    rows = []
    for size, rs in results.items():
        rss = [max(r.worker_rss_mib) for r in rs]
        each = "/".join(f"{x:.0f}" for x in rs[len(rs) // 2].worker_rss_mib)
        rows.append(
            f"| {size:,} | {_report.spread([r.publish_request_seconds for r in rs], '.3f')} "
            f"| {_report.spread([r.fan_out_seconds for r in rs], '.2f')} "
            f"| {_report.spread([r.delivered_seconds for r in rs], '.1f')} "
            f"| {_report.spread([r.deliveries_per_second for r in rs])} "
            f"| {_report.spread(rss, '.0f')} ({each}) "
            f"| {web_cell(rs)} "
            f"| {cpu_text([r.cpu_fan_out for r in rs], CPU_KEYS)} "
            f"| {cpu_text([r.cpu_total for r in rs], CPU_KEYS)} |"
        )
    big, small = results[c.large], results[c.small]
    publish = statistics.median(r.publish_request_seconds for r in big)
    fan_out = statistics.median(r.fan_out_seconds for r in big)
    delivered = statistics.median(r.delivered_seconds for r in big)
    rss_big = max(max(r.worker_rss_mib) for r in big)
    rss_small = max(max(r.worker_rss_mib) for r in small)
    flat = rss_big <= rss_small * 1.1 + 5
    stats = probe_stats([p for p, _ in all_probes(big) if p.at >= 0])
    web_errors = sum(s["errors"] for s in stats.values())
    web_max = max((s["max_ms"] for s in stats.values()), default=float("nan"))
    probes = "`GET /health/ready`, `GET /`" + (
        " and `POST /subscriptions` (a new pending address each)" if c.subscribe_probe else ""
    )
    heading = (
        f"{HUGE_HEADING}{c.large:,} subscribers (`--huge`)"
        if huge
        else f"### P2 — {c.large:,} subscribers: publish request, fan-out, delivery, "
        "worker memory, web"
    )
    runs_text = f"{c.runs} run(s)" + (" (one run: a 10M run takes ~25 min)" if huge else "")
    lines = [
        heading,
        "",
        "```sh",
        _report.command_line(),
        "```",
        "",
        f"Herald at {c.commit} (schema {schemas(results)}). "
        f"{c.small:,} and {c.large:,} confirmed subscribers (COPY, one database each, reused) "
        f"in an embedded Postgres {c.pg_version} (default settings, durable commits); "
        f"{runs_text}, each on an emptied queue. {c.workers} `herald worker` processes x "
        f"{c.batch_size} rows per claim send through Postmark batch (500/call) to "
        "`tests/support/postmark_sink.py`; one `herald serve` on the same database. The "
        "issue is published through the contract form (`POST /admin/newsletters` with a "
        "signed-in admin's session, CSRF token and idempotency key). Publish request = that "
        "request's round trip; fan-out = `published_at` → `fanout_done_at` (the workers "
        "queued every recipient, in chunks); delivered = `published_at` → last `sent_at`; "
        "RSS = each worker's `VmHWM` (largest, and every worker of the median run). Web: "
        f"{probes} every {c.probe_interval * 1000:.0f} ms from 2 s before the publish until "
        "the issue was `sent`, latency from the time each probe was due (errors / p99 / max "
        f"ms over all of them). CPU: per process group from /proc, Postgres = every child of "
        "the postmaster (exited ones included); other = the rest of the machine (work that "
        f"is not this benchmark's). {machine()}, Python {platform.python_version()}, "
        f"{_report.today()}.",
        "",
        "| subscribers | publish request s | fan-out s | delivered s | deliveries/s "
        "| worker peak RSS MiB (each) | web: errors / p99 / max ms "
        "| CPU s in fan-out: workers / Postgres / web / sink / other "
        "| CPU s whole run: workers / Postgres / web / sink / other |",
        "|---:|---:|---:|---:|---:|---:|---:|---|---|",
        *rows,
        "",
        f"Fan-out at {c.large:,}: {chunk_line(big)}. At {c.small:,}: {chunk_line(small)}.",
        "",
        postgres_line(big[len(big) // 2]) + ".",
        "",
        f"Web probes at {c.large:,} (all runs):",
        "",
        *web_table(big),
        "",
        f"Targets at {c.large:,}: publish request ≤ {PUBLISH_TARGET_S:g} s: {publish:.3f} s — "
        f"{_report.verdict(publish <= PUBLISH_TARGET_S)}; fan-out ≤ "
        f"{fan_out_target(c.large):g} s: {fan_out:.2f} s — "
        f"{_report.verdict(fan_out <= fan_out_target(c.large))}; delivered ≤ "
        f"{delivered_target(c.large):g} s: {delivered:.0f} s — "
        f"{_report.verdict(delivered <= delivered_target(c.large))}; worker RSS ≤ "
        f"{RSS_TARGET_MIB:g} MiB and flat: {rss_small:.0f} MiB at {c.small:,} vs "
        f"{rss_big:.0f} MiB — {_report.verdict(rss_big <= RSS_TARGET_MIB and flat)}; web "
        f"responsive (every probe 2xx within {WEB_MAX_MS:,.0f} ms): {web_errors} errors, "
        f"slowest {web_max:,.0f} ms — "
        f"{_report.verdict(web_errors == 0 and web_max <= WEB_MAX_MS)}.",
        "Correctness: every delivery `sent` in every run."
        if not c.failures
        else "Correctness: **FAILED** — " + "; ".join(c.failures),
    ]
    return "\n".join(lines)


def _current() -> tuple[str | None, str | None]:
    """The default and ``--huge`` parts of P2's section in BENCHMARKS.md as it stands."""
    if not BENCHMARKS.exists():
        return None, None
    text = BENCHMARKS.read_text()
    if BEGIN not in text or END not in text:
        return None, None
    block = text.split(BEGIN, 1)[1].split(END, 1)[0]
    start = block.find("### P2 ")
    if start < 0:
        return None, None
    section = block[start:]
    following = section.find("\n### ", 1)
    section = section[:following] if following >= 0 else section
    default, sep, huge = section.partition(HUGE_HEADING)
    return default.strip() or None, (sep + huge).strip() or None


def write(section: str, part: str, results: dict[int, list[Any]]) -> None:
    """Store this run's part and join both parts into ``P2.md``."""
    _report.RESULTS.mkdir(parents=True, exist_ok=True)
    (_report.RESULTS / f"P2-{part}.md").write_text(section.rstrip() + "\n")
    data = {size: [asdict(r) for r in rs] for size, rs in results.items()}
    (_report.RESULTS / f"P2-{part}.json").write_text(json.dumps(data, indent=1, default=str))
    carried = dict(zip(("default", "huge"), _current(), strict=True))
    parts = []
    for name in ("default", "huge"):
        path = _report.RESULTS / f"P2-{name}.md"
        text = path.read_text().strip() if path.exists() else carried[name]
        if text:
            parts.append(text)
    _report.write_section("P2", "\n\n".join(parts))
