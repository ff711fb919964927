"""The one entry point: every scenario in turn, then BENCHMARKS.md.

    make bench         # full: >= 3 runs per figure, 100k and 1M subscribers (~40 min)
    make bench-quick   # every scenario small and fast (a few minutes), same code paths
    .venv/bin/python bench/run.py --only P1 --only R1   # a subset
    .venv/bin/python bench/run.py --only P2 --huge      # P2 at 10 million subscribers (~20 min)
    HERALD_BENCH_RESULTS=/tmp/trial .venv/bin/python bench/run.py --quick --no-report

Each scenario script starts what it needs on loopback (Postgres, Herald's processes,
sinks, load generators) and tears it down; none may run at the same time as another,
because they would share the two cores. A scenario that fails (lost mail, a crash) is
reported and makes the exit status non-zero; the others still run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCENARIOS: dict[str, tuple[str, str]] = {
    "P1": ("delivery.py", "delivery throughput: Postmark batch, Postmark single, SMTP"),
    "P2": ("million.py", "big lists: publish request, fan-out, delivery, worker RSS, web"),
    "P3": ("subscribe.py", "subscribe API against a one-INSERT endpoint; uvicorn vs granian"),
    "P4": ("send_path.py", "send-path efficiency against a raw client loop"),
    "R1": ("soak.py", "crash soak: workers SIGKILLed at random"),
    "R2": ("db_restart.py", "database restart under subscribe load"),
    "R3": ("storm.py", "provider storm: 5xx, 429, hangs, then recovery"),
    "R6": ("mixed.py", "subscribe load while an issue sends"),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small, fast versions")
    parser.add_argument("--only", action="append", choices=sorted(SCENARIOS), default=[])
    parser.add_argument(
        "--huge", action="store_true", help="P2 at 10 million subscribers instead of 1 million"
    )
    parser.add_argument(
        "--no-report", action="store_true", help="leave BENCHMARKS.md alone (a trial run)"
    )
    args = parser.parse_args()
    chosen = args.only or list(SCENARIOS)
    subprocess.run(["bash", str(HERE / "install-tools.sh")], check=True)
    failed: list[str] = []
    for scenario in chosen:
        script, title = SCENARIOS[scenario]
        command = [sys.executable, str(HERE / script)] + (["--quick"] if args.quick else [])
        if scenario == "P2" and args.huge:
            command.append("--huge")
        print(f"\n=== {scenario}: {title}\n$ {' '.join(command)}", flush=True)
        started = time.monotonic()
        code = subprocess.run(command, check=False).returncode
        print(f"=== {scenario}: exit {code} after {time.monotonic() - started:.0f} s", flush=True)
        if code != 0:
            failed.append(scenario)
    if not args.no_report:
        subprocess.run([sys.executable, str(HERE / "report.py")], check=True)
    if failed:
        print(f"failed scenarios: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
