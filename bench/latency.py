#!/usr/bin/env python
"""SciCat answering late: throughput with requests in flight concurrently.

Run ``python bench/latency.py`` (burst of 50, 5 single scans, re-ingestion of
1000 scans, every request answered 50 ms late) or ``python bench/latency.py
--quick`` (10 / 3 / 50). ``--in-flight N`` sets ``max_scans_in_flight`` (default:
the configuration default); ``--in-flight 1`` gives the one-after-another
figures to compare with. See bench/README.md "SciCat answering late".

Inputs and processes as in ``bench/run.py``: NeXus scans of 100 points with a
PNG and 3 detector files; the dev server in this process (every request
time-stamped when received, ``faults.set_latency``); the daemon and the
re-ingestion tool as separate processes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Optional, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from run import (  # noqa: E402
    DATABLOCKS,
    DATASETS,
    WATCHING,
    Daemon,
    RequestClock,
    Results,
    append_at_once,
    bench_frame,
    finish_daemon,
    ingested_count,
    median,
    progress,
    run_reingest,
    series,
    wait_until,
)

from scingestor.testing import BeamtimeFactory  # noqa: E402
from scingestor.testing.setup import write_config  # noqa: E402

F_BURST = "burst of 50, 50 ms late"
F_SINGLE = "single scan, 50 ms late: -> dataset POST / -> datablock POST"
F_REQUESTS = "HTTP requests per scan, happy path"
F_COLD = "scicat_dataset_ingest, 50 ms late: cold"
F_WARM = "scicat_dataset_ingest, 50 ms late: unchanged"
FIGURES = (F_BURST, F_SINGLE, F_REQUESTS, F_COLD, F_WARM)


def api_requests(clock: RequestClock, start: int) -> int:
    """Requests received since ``start``, logins excluded."""
    return sum(1 for method in ("GET", "POST", "PATCH", "PUT", "DELETE")
               for _, r in clock.matching(method, "", start) if "login" not in r.path.lower())


def bench_daemon(burst: int, singles: int, latency: float, overrides: dict, server: Any,
                 clock: RequestClock, tmp: str, results: Results) -> None:
    factory = BeamtimeFactory(os.path.join(tmp, "daemon"), beamtime_id="99004001")
    single_names = [f"single_{index:05d}" for index in range(singles)]
    burst_names = [f"burst_{index:05d}" for index in range(burst)]
    progress(f"writing {singles + burst} NeXus scans")
    for name in single_names + burst_names:
        factory.write_nexus_scan(name, points=100, png=True, detector_files=3)
    open(factory.list_path(), "a", encoding="utf-8").close()
    daemon = Daemon(write_config(factory, server.url, **overrides))
    try:
        daemon.wait_line(WATCHING, 60)
        time.sleep(0.5)
        # a warm-up scan (lazy imports, login), not measured
        factory.write_nexus_scan("warmup", points=100, png=True, detector_files=3)
        factory.append_list(None, "warmup")
        wait_until(lambda: ingested_count(factory) >= 1, 60, "the warm-up scan")
        server.faults.set_latency(latency)
        to_dataset, to_block = [], []
        for number, name in enumerate(single_names, start=2):
            time.sleep(0.3)
            mark = clock.mark()
            start = time.perf_counter()
            factory.append_list(None, name)
            blocks = wait_until(lambda m=mark: clock.matching("POST", DATABLOCKS, m), 60,
                                f"datablock of {name}")
            to_block.append(blocks[0][0] - start)
            to_dataset.append(clock.matching("POST", DATASETS, mark)[0][0] - start)
            wait_until(lambda n=number: ingested_count(factory) >= n, 60, name)
        results.add(F_SINGLE, f"median of {singles}",
                    f"{median(to_dataset):.3f} s / {median(to_block):.3f} s",
                    "<= 0.03 s / <= 0.08 s", "0.07 s / 0.18 s",
                    median(to_dataset) <= 0.03 and median(to_block) <= 0.08)
        results.note(f"single: append -> dataset POST received {series(to_dataset)}; "
                     f"-> datablock POST received {series(to_block)}")
        time.sleep(0.5)
        expected = ingested_count(factory) + burst
        mark = clock.mark()
        start = time.perf_counter()
        append_at_once(factory, burst_names)
        wait_until(lambda: (clock.ok_count("POST", DATASETS, mark) >= burst
                            and clock.ok_count("POST", DATABLOCKS, mark) >= burst),
                   600, "the burst in the server")
        elapsed = time.perf_counter() - start
        wait_until(lambda: ingested_count(factory) >= expected, 600, "the burst recorded")
        recorded = time.perf_counter() - start
        per_scan = api_requests(clock, mark) / burst
        results.add(F_BURST, f"{burst} scans", f"{elapsed:.2f} s", "<= 2.5 s", "17 s (45 s)",
                    elapsed <= 2.5)
        results.add(F_REQUESTS, f"{burst} scans", f"{per_scan:.1f}", "3", "6 (4-5)",
                    per_scan <= 3.0)
        results.note(f"burst: -> all datasets+datablocks stored {elapsed:.2f} s; -> all "
                     f"recorded {recorded:.2f} s; daemon threads now {daemon.threads()}")
    finally:
        server.faults.set_latency(0.0)
        finish_daemon(daemon, results)


def bench_reingest(scans: int, latency: float, overrides: dict, server: Any,
                   clock: RequestClock, tmp: str, results: Results) -> None:
    factory = BeamtimeFactory(os.path.join(tmp, "reingest"), beamtime_id="99004002")
    names = [f"scan_{index:05d}" for index in range(scans)]
    progress(f"writing {scans} NeXus scans for the re-ingestion")
    for name in names:
        factory.write_nexus_scan(name, points=100, png=True, detector_files=3)
    factory.append_list(None, *names)
    config = write_config(factory, server.url, **overrides)
    server.faults.set_latency(latency)
    try:
        progress("re-ingestion, cold")
        mark = clock.mark()
        cold, summary = run_reingest(config)
        results.note(f"cold: {cold:.1f} s; {summary}; {len(server.datasets())} datasets, "
                     f"{api_requests(clock, mark) / scans:.1f} requests per scan")
        progress("re-ingestion, unchanged")
        mark = clock.mark()
        warm, summary = run_reingest(config)
        results.note(f"unchanged: {warm:.2f} s; {summary}; "
                     f"{api_requests(clock, mark)} requests")
    finally:
        server.faults.set_latency(0.0)
    results.add(F_COLD, f"{scans} scans", f"{cold:.1f} s", "<= 30 s", "343 s",
                cold <= 30.0)
    results.add(F_WARM, f"{scans} scans", f"{warm:.2f} s", "<= 1 s", "3.9 s", warm <= 1.0)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 / 3 / 50 scans")
    parser.add_argument("--reingest", type=int, help="scans re-ingested (default 1000)")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--in-flight", type=int, help="max_scans_in_flight")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    options = parser.parse_args(argv)
    burst, singles = (10, 3) if options.quick else (50, 5)
    reingest = options.reingest or (50 if options.quick else 1000)
    latency = options.latency_ms / 1000.0
    overrides = {} if options.in_flight is None else {"max_scans_in_flight": options.in_flight}

    def measure(server: Any, clock: RequestClock, tmp: str, results: Results) -> None:
        bench_daemon(burst, singles, latency, overrides, server, clock, tmp, results)
        bench_reingest(reingest, latency, overrides, server, clock, tmp, results)

    return bench_frame([(FIGURES, measure)], prefix="scingestor-latency-", keep=options.keep,
                       note=f"latency {options.latency_ms:g} ms; max_scans_in_flight "
                            f"{options.in_flight or 'default'}")

if __name__ == "__main__":
    sys.exit(main())
