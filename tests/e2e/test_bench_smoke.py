"""CI smoke of the benchmark suite: P1 (Postmark batch), R1, A1, API1, LST1, SEG1, SUP1
and I1 on small data.

Each runs the real benchmark script as a subprocess, exactly as ``make bench`` does but
with a few thousand subscribers, and fails on any lost or undelivered mail: the script's
exit status and the numbers it writes as JSON (into ``tmp_path``, never into
``bench/results/``) must both say so. Together they take well under two minutes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# A1's data at 5,000 subscribers / 20,000 deliveries, 20 requests a case; API1 loads the same.
A1_SMALL = (
    "--subscribers",
    "5000",
    "--deliveries",
    "20000",
    "--heavy",
    "300",
    "--requests",
    "20",
    "--no-fail",
)


def run_bench(
    script: str, *args: str, results: Path, timeout: float
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HERALD_BENCH_RESULTS=str(results))  # never bench/results/
    completed = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    print(completed.stderr[-4000:])
    return completed


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_p1_postmark_batch_small_delivers_to_everyone(tmp_path: Path) -> None:
    # bench/publish.py is P1's Postmark-batch path (2 workers x 500-message batches).
    output = tmp_path / "p1.json"
    completed = run_bench(
        "publish.py",
        "--subscribers",
        "2000",
        "--runs",
        "1",
        "--config",
        "2:500:1",
        "--json",
        str(output),
        results=tmp_path,
        timeout=80,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    [result] = json.loads(output.read_text())
    assert result["recipients"] == 2000
    assert result["sent"] == result["recipients"], "undelivered mail"


@pytest.mark.slow
@pytest.mark.timeout(110)
def test_r1_crash_soak_small_loses_nobody(tmp_path: Path) -> None:
    completed = run_bench(
        "soak.py",
        "--subscribers",
        "3000",
        "--kills",
        "3",
        "--runs",
        "1",
        "--batch-size",
        "100",
        "--lease-seconds",
        "2",
        "--kill-window-end",
        "0.6",
        "--results",
        str(tmp_path),
        results=tmp_path,
        timeout=100,
    )
    data = json.loads((tmp_path / "R1.json").read_text())
    [run] = data["runs"]
    assert run["lost"] == 0, f"lost mail (seed {run['seed']})"
    assert run["wrong_rows"] == 0, f"subscribers without exactly one sent row (seed {run['seed']})"
    assert run["kills"] == 3
    assert run["duplicates"] <= run["duplicate_bound"], f"seed {run['seed']}"
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert (tmp_path / "R1.md").exists()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a1_admin_subscriber_pages_small(tmp_path: Path) -> None:
    # bench/admin.py at 5,000 subscribers / 20,000 deliveries: every page answers 200.
    completed = run_bench(
        "admin.py",
        *A1_SMALL,
        results=tmp_path,
        timeout=110,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    data = json.loads((tmp_path / "A1.json").read_text())
    assert len(data["results"]) >= 12
    assert all(len(times) == 20 for times in data["results"].values())
    assert "### A1" in (tmp_path / "A1.md").read_text()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_api1_list_endpoints_small(tmp_path: Path) -> None:
    # bench/api_lists.py on A1's small database: every case answers and is reported.
    completed = run_bench(
        "api_lists.py",
        *A1_SMALL,
        results=tmp_path,
        timeout=110,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    rows = [line for line in completed.stdout.splitlines() if line.startswith("| ")]
    assert len(rows) >= 2 + 15, completed.stdout  # header, rule and at least 15 cases
    assert "### API1" in completed.stdout


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_lst1_list_statements_small(tmp_path: Path) -> None:
    # bench/lists.py: the named statements still run, and 0019's counts equal count(*).
    completed = run_bench(
        "lists.py", "--subscribers", "5000", "--runs", "1", results=tmp_path, timeout=80
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "counts kept by the triggers equal count(*): True" in completed.stderr
    assert "members unsubscribed, half-way" in completed.stderr


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_seg1_segment_counts_small(tmp_path: Path) -> None:
    # bench/segments.py against a head that already has 0023's index: both sides measured.
    completed = run_bench(
        "segments.py",
        "--subscribers",
        "5000",
        "--runs",
        "1",
        "--write-rows",
        "1000",
        results=tmp_path,
        timeout=80,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    rows = [line for line in completed.stderr.splitlines() if "| with GIN" in line]
    assert len(rows) == 7, completed.stderr
    assert "city eq (rare, ~0.2 %)" in completed.stderr


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_sup1_suppression_pages_small(tmp_path: Path) -> None:
    # bench/suppressions.py: every filter the admin page offers runs on a loaded table.
    completed = run_bench(
        "suppressions.py", "--rows", "5000", "--runs", "1", results=tmp_path, timeout=80
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert len([line for line in completed.stdout.splitlines() if line.endswith(" ms")]) == 8


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_i1_import_export_small(tmp_path: Path) -> None:
    # bench/import.py: the CLI imports every row into the default list and exports them.
    completed = run_bench("import.py", "--rows", "2000", results=tmp_path, timeout=110)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "2,000 subscribers, 2,000 memberships" in completed.stdout
    assert "export 2,000 rows" in completed.stdout
