#!/usr/bin/env python
"""Long beamtimes: the cost of one more scan after N ingested list lines.

Run ``python bench/long_list.py`` (1 000 / 20 000 / 100 000 lines) or
``python bench/long_list.py --quick`` (1 000 / 5 000 lines). See bench/README.md
"Long lists": a pass over a list must cost O(new lines),
whatever the length of the list (docs/architecture.md "Reading only what was
appended").

For each size a beamtime is built whose dataset list holds N scan lines that
are all in the ingested list already (only their names exist: a complete
ingested record means the daemon never looks at their files). The daemon
(a separate process) is started and left to settle; then one real scan is
appended at a time, Sardana-style, and measured: append → ``POST /Datasets``
received by the in-process dev server (latency), and the daemon's CPU from
just before the append until the scan is recorded in the ingested list and
the daemon is idle again (CPU per scan). The resident memory of the daemon is
read at the end of the largest size.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import List, Optional, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from run import (  # noqa: E402
    DATASETS,
    WATCHING,
    Daemon,
    RequestClock,
    Results,
    bench_frame,
    finish_daemon,
    median,
    proc_kib,
    series,
    wait_until,
)

from scingestor.testing import BeamtimeFactory  # noqa: E402
from scingestor.testing.setup import write_config  # noqa: E402

F_LONG_LATENCY = "one more scan, long list: latency"
F_LONG_CPU = "one more scan, long list: CPU"
F_LONG_RSS = "resident memory, long list"
FIGURES = (F_LONG_LATENCY, F_LONG_CPU, F_LONG_RSS)

LATENCY_TARGET = 0.05  # s, at the largest size
CPU_TARGET = 0.05  # CPU-s per scan, at the largest size
RSS_TARGET = 150.0  # MB with the largest list
SETTLE = 0.5  # s of quiet after a scan is recorded before the CPU is read


def build(tmp: str, lines: int) -> BeamtimeFactory:
    """A beamtime whose list has ``lines`` scan lines, every one already ingested."""
    factory = BeamtimeFactory(os.path.join(tmp, f"long{lines}"),
                              beamtime_id=f"9904{lines:06d}")
    names = [f"old_{index:06d}" for index in range(lines)]
    with open(factory.list_path(), "w", encoding="utf-8") as handle:
        handle.write("".join("\n" + name for name in names))
    with open(factory.ingested_path(), "w", encoding="utf-8") as handle:
        handle.write("".join(f"{name} 1718000000.5 1718000001.5 0\n" for name in names))
    return factory


def recorded(path: str, key: str) -> bool:
    """Is ``key`` in the last few records of the ingested list (reads only its end)?"""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 4096))
            data = handle.read()
    except OSError:
        return False
    return any(line.split(b" ")[0] == key.encode() for line in data.split(b"\n"))


def measure(lines: int, scans: int, server, clock: RequestClock, tmp: str,
            results: Results) -> tuple:
    """(median latency, median CPU per scan, RSS MB, peak MB) for one list length."""
    factory = build(tmp, lines)
    names = [f"new_{index:05d}" for index in range(scans + 1)]
    for name in names:
        factory.write_nexus_scan(name, points=100, png=True, detector_files=3)
    daemon = Daemon(write_config(factory, server.url))
    try:
        daemon.wait_line(WATCHING, 120)
        time.sleep(1.0)  # the start-up pass over the list
        latencies: List[float] = []
        cpus: List[float] = []
        for number, name in enumerate(names):
            mark = clock.mark()
            cpu0 = daemon.cpu()
            start = time.perf_counter()
            factory.append_list(None, name)
            received = wait_until(lambda m=mark: clock.matching("POST", DATASETS, m), 120,
                                  f"POST of {name}")[0][0]
            wait_until(lambda n=name: recorded(factory.ingested_path(), n), 120,
                       f"{name} in the ingested list")
            time.sleep(SETTLE)
            if number == 0:
                continue  # the first scan also pays the lazy imports and the login
            latencies.append(received - start)
            cpus.append(daemon.cpu() - cpu0)
        rss = proc_kib(daemon.pid, "VmRSS") / 1024
        hwm = proc_kib(daemon.pid, "VmHWM") / 1024
        results.note(f"{lines} lines: latency {series(latencies)}; CPU per scan "
                     f"{series(cpus, 'CPU-s', 2)}; RSS {rss:.0f} MB (peak {hwm:.0f} MB)")
    finally:
        finish_daemon(daemon, results)
    return median(latencies), median(cpus), rss, hwm


def bench_long_lists(sizes: Sequence[int], scans: int, server, clock: RequestClock, tmp: str,
                     results: Results) -> None:
    """The three long-list figures; the details give every size."""
    figures = [measure(lines, scans, server, clock, tmp, results) for lines in sizes]
    table = "; ".join(f"{lines}: {lat:.3f} s / {cpu:.3f} CPU-s"
                      for lines, (lat, cpu, _, _) in zip(sizes, figures))
    results.note(f"latency / CPU per scan by list length: {table}")
    latency, cpu, rss, hwm = figures[-1]
    scale = f"{sizes[-1]} lines, median of {scans}"
    results.add(F_LONG_LATENCY, scale, f"{latency:.3f} s", f"<= {LATENCY_TARGET} s", "-",
                latency <= LATENCY_TARGET)
    results.add(F_LONG_CPU, scale, f"{cpu:.3f} CPU-s", f"<= {CPU_TARGET} CPU-s",
                "~1.6 CPU-s", cpu <= CPU_TARGET)
    results.add(F_LONG_RSS, f"{sizes[-1]} lines", f"{rss:.0f} MB (peak {hwm:.0f} MB)",
                f"<= {RSS_TARGET:.0f} MB", "-", max(rss, hwm) <= RSS_TARGET)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 000 and 5 000 lines")
    parser.add_argument("--sizes", type=lambda text: [int(v) for v in text.split(",")],
                        help="comma-separated list lengths (default 1000,20000,100000)")
    parser.add_argument("--scans", type=int, default=5, help="measured scans per size")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    options = parser.parse_args(argv)
    sizes = options.sizes or ([1000, 5000] if options.quick else [1000, 20000, 100000])
    scans = min(options.scans, 3) if options.quick else options.scans
    return bench_frame(
        [(FIGURES, lambda server, clock, tmp, results: bench_long_lists(
            sizes, scans, server, clock, tmp, results))],
        prefix="scingestor-longlist-", keep=options.keep, note="")

if __name__ == "__main__":
    sys.exit(main())
