"""Smoke test of the benchmark: ``bench/run.py --quick`` (and ``bench/long_list.py``,
``bench/fio_burst.py --quick``) run and print every figure.

The measured values are never checked here (they depend on the machine); the
benchmark itself prints OK/MISSED beside each target.
"""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench", "run.py")

FIGURES = (
    "single-scan latency",
    "burst ingestion time",
    "CPU per scan (burst)",
    "settle time, many dirs",
    "idle CPU, many dirs",
    "stop time, many dirs",
    "threads, few dirs",
    "threads, many dirs",
    "resident memory",
    "reingest cold",
    "reingest unchanged",
    "history CPU per scan",
    "history memory, full",
)


def test_quick_benchmark_runs_and_prints_every_figure():
    result = subprocess.run(
        [sys.executable, BENCH, "--quick"], capture_output=True, text=True, timeout=300,
        stdin=subprocess.DEVNULL, cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = result.stdout
    assert "figure" in table and "measured" in table and "target" in table
    for name in FIGURES:
        rows = [line for line in table.splitlines() if line.startswith(name + " ")]
        assert rows, f"{name!r} missing from:\n{table}"
        assert rows[0].rstrip().endswith(("OK", "MISSED")), rows[0]


def test_long_list_benchmark_runs_and_prints_its_figures():
    script = os.path.join(ROOT, "bench", "long_list.py")
    result = subprocess.run(
        [sys.executable, script, "--sizes", "200,2000", "--scans", "1"], capture_output=True,
        text=True, timeout=300, stdin=subprocess.DEVNULL, cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for name in ("one more scan, long list: latency", "one more scan, long list: CPU",
                 "resident memory, long list"):
        rows = [line for line in result.stdout.splitlines() if line.startswith(name + " ")]
        assert rows and rows[0].rstrip().endswith(("OK", "MISSED")), result.stdout


def test_fio_burst_benchmark_runs_and_prints_its_figures():
    script = os.path.join(ROOT, "bench", "fio_burst.py")
    result = subprocess.run(
        [sys.executable, script, "--quick"], capture_output=True, text=True, timeout=300,
        stdin=subprocess.DEVNULL, cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for name in ("2000 plotted FIO scans in one write", "plotted FIO burst: scans per minute"):
        rows = [line for line in result.stdout.splitlines() if line.startswith(name + " ")]
        assert rows and rows[0].rstrip().endswith(("OK", "MISSED")), result.stdout
