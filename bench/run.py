#!/usr/bin/env python
"""scingestor benchmark: speed and memory figures printed beside their targets.

Run ``python bench/run.py`` (full sizes, medians of 3 runs) or
``python bench/run.py --quick`` (each figure once, small sizes: a smoke test).
See ``bench/README.md`` for what each figure means and how it is measured.

The development server runs in this process (its request log is hooked to
time-stamp every request as it is received); the daemon and the re-ingestion
tool run as separate processes, so their CPU time, threads and memory are read
from ``/proc/<pid>`` and are not mixed with the server's or the benchmark's.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from status_cost import status_update_note  # noqa: E402

from scingestor.testing import BeamtimeFactory, DevServerHandle, start_dev_server  # noqa: E402
from scingestor.testing.setup import wait_for, write_config  # noqa: E402

if HERE not in sys.path:
    sys.path.insert(0, HERE)
import history_cost  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
POLL = 0.005  # seconds between checks while waiting for something

# Figure names, in table order (the smoke test checks that each one is printed).
F_LATENCY = "single-scan latency"
F_BURST = "burst ingestion time"
F_CPU = "CPU per scan (burst)"
F_SETTLE = "settle time, many dirs"
F_IDLE = "idle CPU, many dirs"
F_STOP = "stop time, many dirs"
F_THREADS_FEW = "threads, few dirs"
F_THREADS_MANY = "threads, many dirs"
F_RSS = "resident memory"
F_COLD = "reingest cold"
F_WARM = "reingest unchanged"
F_HISTORY_CPU = "history CPU per scan"
F_HISTORY_MEM = "history memory, full"
FIGURES = (F_LATENCY, F_BURST, F_CPU, F_SETTLE, F_IDLE, F_STOP, F_THREADS_FEW,
           F_THREADS_MANY, F_RSS, F_COLD, F_WARM, F_HISTORY_CPU, F_HISTORY_MEM)


@dataclass
class Sizes:
    """How big and how often: full run or ``--quick``."""

    runs: int  # repetitions of the timed figures (median taken)
    singles: int  # single appends for the latency figure
    burst: int  # scans per burst
    few_dirs: int
    many_dirs: int
    idle_seconds: float
    reingest: int  # scans for scicat_dataset_ingest
    history_outcomes: int  # outcomes timed through the service's outcome path
    points: int = 100
    detector_files: int = 3


FULL = Sizes(runs=3, singles=5, burst=50, few_dirs=200, many_dirs=2000, idle_seconds=10.0,
             reingest=50, history_outcomes=20000)
QUICK = Sizes(runs=1, singles=3, burst=10, few_dirs=20, many_dirs=200, idle_seconds=2.0,
              reingest=10, history_outcomes=2000)


# --------------------------------------------------------------------------- results

@dataclass
class Row:
    """One line of the result table."""

    name: str
    scale: str
    measured: str
    target: str
    original: str
    ok: Optional[bool]  # None: could not be measured


@dataclass
class Results:
    rows: List[Row] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    def add(self, name: str, scale: str, measured: str, target: str, original: str,
            ok: Optional[bool]) -> None:
        self.rows.append(Row(name, scale, measured, target, original, ok))
        verdict = "OK" if ok else ("MISSED" if ok is False else "N/A")
        progress(f"{name}: {measured} (target {target}) {verdict}")

    def note(self, text: str) -> None:
        self.notes.append(text)
        progress("  " + text)

    def print_table(self, stream=sys.stdout) -> None:
        order = {name: index for index, name in enumerate(FIGURES)}
        rows = sorted(self.rows, key=lambda row: order.get(row.name, len(order)))
        header = ("figure", "scale", "measured", "target", "original", "result")
        table = [header] + [
            (r.name, r.scale, r.measured, r.target, r.original,
             "OK" if r.ok else ("MISSED" if r.ok is False else "N/A"))
            for r in rows
        ]
        widths = [max(len(line[i]) for line in table) for i in range(len(header))]

        def fmt(line: Sequence[str]) -> str:
            return " | ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip()

        print(fmt(header), file=stream)
        print("-+-".join("-" * width for width in widths), file=stream)
        for line in table[1:]:
            print(fmt(line), file=stream)
        if self.notes:
            print("\nDetails:", file=stream)
            for text in self.notes:
                print(f"  {text}", file=stream)
        stream.flush()


def progress(text: str) -> None:
    print(f"# {text}", file=sys.stderr, flush=True)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def series(values: Sequence[float], unit: str = "s", digits: int = 3) -> str:
    return ", ".join(f"{value:.{digits}f}" for value in values) + f" {unit}"


# --------------------------------------------------------------------------- /proc

def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (and of its reaped children)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        data = handle.read()
    fields = data[data.rindex(")") + 2:].split()
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    return (utime + stime + cutime + cstime) / CLK_TCK


def proc_status(pid: int) -> dict:
    """``/proc/<pid>/status`` as a dict of strings."""
    result = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            result[key] = value.strip()
    return result


def proc_kib(pid: int, key: str) -> int:
    return int(proc_status(pid)[key].split()[0])


def inotify_watches(pid: int) -> int:
    """Number of inotify watches held by ``pid`` (from ``/proc/<pid>/fdinfo``)."""
    total = 0
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            if "inotify" not in os.readlink(os.path.join(fd_dir, fd)):
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}", encoding="ascii") as handle:
                total += sum(1 for line in handle if line.startswith("inotify wd:"))
        except OSError:
            continue
    return total


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> object:
    """:func:`wait_for` with the benchmark's poll period."""
    return wait_for(predicate, timeout, interval=POLL, what=what)


# --------------------------------------------------------------------------- server

class RequestClock:
    """Time-stamps every request the in-process dev server records, when received."""

    def __init__(self, handle: DevServerHandle) -> None:
        self._records: List[Tuple[float, object]] = []
        self._lock = threading.Lock()
        self._patterns: dict = {}
        log = handle.server.log
        original = log.add

        def add(*args, **kwargs):
            record = original(*args, **kwargs)
            with self._lock:
                self._records.append((time.perf_counter(), record))
            return record

        log.add = add  # instance attribute: only this server's log is hooked

    def mark(self) -> int:
        """Position in the record list; pass it as ``start`` to look at later requests only."""
        with self._lock:
            return len(self._records)

    def matching(self, method: str, pattern: str, start: int = 0) -> List[Tuple[float, object]]:
        """(time, record) of requests with ``method`` whose path matches ``pattern``."""
        regex = self._patterns.get(pattern)
        if regex is None:
            regex = self._patterns[pattern] = re.compile(pattern, re.IGNORECASE)
        with self._lock:
            records = self._records[start:]
        return [(t, r) for t, r in records if r.method == method and regex.search(r.path)]

    def ok_count(self, method: str, pattern: str, start: int = 0) -> int:
        """Requests as in :meth:`matching` that were answered with a 2xx status."""
        return sum(1 for _, r in self.matching(method, pattern, start) if 200 <= r.status < 300)


DATASETS = r"/Datasets$"
DATABLOCKS = r"/OrigDatablocks$"
ATTACHMENTS = r"/Attachments$"


# --------------------------------------------------------------------------- daemon

class Daemon:
    """``python -m scingestor.cli.daemon`` as a process; stderr lines are time-stamped."""

    def __init__(self, config: str, level: str = "info") -> None:
        self.lines: List[Tuple[float, str]] = []
        self._lock = threading.Lock()
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "scingestor.cli.daemon", "-c", config, "-l", level],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, cwd=REPO, env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        self.pid = self.proc.pid
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._lock:
                self.lines.append((time.perf_counter(), line.rstrip("\n")))

    def find(self, pattern: str) -> Optional[Tuple[float, re.Match]]:
        regex = re.compile(pattern)
        with self._lock:
            lines = list(self.lines)
        for stamp, line in lines:
            match = regex.search(line)
            if match:
                return stamp, match
        return None

    def wait_line(self, pattern: str, timeout: float) -> Tuple[float, re.Match]:
        def found():
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}:\n{self.tail()}")
            return self.find(pattern)
        return wait_until(found, timeout, f"daemon log line {pattern!r}")  # type: ignore

    def tail(self, count: int = 15) -> str:
        with self._lock:
            return "\n".join(line for _, line in self.lines[-count:])

    def problems(self) -> List[str]:
        with self._lock:
            return [line for _, line in self.lines
                    if line.startswith(("ERROR", "CRITICAL")) or "Traceback" in line]

    def cpu(self) -> float:
        return proc_cpu(self.pid)

    def threads(self) -> int:
        return int(proc_status(self.pid)["Threads"])

    def stop(self, timeout: float = 60.0) -> float:
        """SIGTERM, then wait for the exit; returns the seconds it took."""
        start = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise TimeoutError(f"daemon did not exit within {timeout:.0f} s of SIGTERM") from None
        elapsed = time.perf_counter() - start
        self._reader.join(5)
        if self.proc.returncode != 0:
            raise RuntimeError(f"daemon exited with {self.proc.returncode}:\n{self.tail()}")
        return elapsed

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


WATCHING = r"Watching (\d+) beamtime file\(s\), (\d+) scan dir\(s\), (\d+) list\(s\) \((\w+)\)"


def ingested_count(factory: BeamtimeFactory) -> int:
    try:
        return len(factory.read_ingested())
    except OSError:
        return 0


def append_at_once(factory: BeamtimeFactory, names: Sequence[str]) -> None:
    """Append ``names`` to the dataset list with one write (a burst)."""
    with open(factory.list_path(), "a", encoding="utf-8") as handle:
        handle.write("".join("\n" + name for name in names))


# --------------------------------------------------------------------------- figures

def bench_ingestion(sizes: Sizes, server: DevServerHandle, clock: RequestClock, tmp: str,
                    results: Results) -> None:
    """Figures 1, 2, 3, 8: latency of single appends, bursts, CPU per scan, memory."""
    factory = BeamtimeFactory(os.path.join(tmp, "ingest"), beamtime_id="99001001")
    singles = [f"single_{index:05d}" for index in range(sizes.singles)]
    bursts = [[f"burst{run}_{index:05d}" for index in range(sizes.burst)]
              for run in range(sizes.runs)]
    progress(f"writing {len(singles) + sizes.burst * sizes.runs} NeXus scans "
             f"({sizes.points} points, PNG, {sizes.detector_files} detector files each)")
    for name in singles + [name for burst in bursts for name in burst]:
        factory.write_nexus_scan(name, points=sizes.points, png=True,
                                 detector_files=sizes.detector_files)
    open(factory.list_path(), "a", encoding="utf-8").close()
    config = write_config(factory, server.url)
    daemon = Daemon(config)
    try:
        daemon.wait_line(WATCHING, 60)
        time.sleep(0.5)  # let the first (empty) list count finish
        results.note(f"ingestion daemon: threads {daemon.threads()}, "
                     f"RSS {proc_kib(daemon.pid, 'VmRSS') / 1024:.0f} MB before the first scan")

        latencies = []
        for number, name in enumerate(singles, start=1):
            mark = clock.mark()
            start = time.perf_counter()
            factory.append_list(None, name)
            received = wait_until(lambda m=mark: clock.matching("POST", DATASETS, m), 60,
                                  f"POST of {name}")[0][0]
            latencies.append(received - start)
            wait_until(lambda n=number: ingested_count(factory) >= n, 60,
                       f"{name} in the ingested list")
            time.sleep(0.2)
        results.add(F_LATENCY, f"median of {len(latencies)}", f"{median(latencies):.3f} s",
                    "< 0.1 s", "~1.0 s", median(latencies) < 0.1)
        results.note(f"{F_LATENCY}: each append -> POST Datasets received: {series(latencies)}"
                     " (the first scan after start-up also pays the daemon's lazy imports"
                     " of nxstools/h5py/matplotlib and the login)")

        times, cpus, done_times, attachments, served, per_scan = [], [], [], [], [], []
        expected = len(singles)
        threads_seen = []
        for burst in bursts:
            expected += len(burst)
            mark = clock.mark()
            cpu0 = daemon.cpu()
            here0 = time.process_time()
            start = time.perf_counter()
            append_at_once(factory, burst)
            size = len(burst)

            def in_server(m=mark, n=size):
                threads_seen.append(daemon.threads())
                return (clock.ok_count("POST", DATASETS, m) >= n
                        and clock.ok_count("POST", DATABLOCKS, m) >= n)

            wait_until(in_server, 600, f"{len(burst)} datasets and datablocks")
            times.append(time.perf_counter() - start)
            wait_until(lambda e=expected: ingested_count(factory) >= e, 600,
                       "the burst in the ingested list")
            done_times.append(time.perf_counter() - start)
            cpus.append((daemon.cpu() - cpu0) / len(burst))
            served.append(time.process_time() - here0)
            attachments.append(clock.ok_count("POST", ATTACHMENTS, mark))
            per_scan.append((clock.mark() - mark) / len(burst))
        runs = f"median of {len(times)}" if len(times) > 1 else "1 run"
        results.add(F_BURST, f"{sizes.burst} scans, {runs}", f"{median(times):.2f} s", "< 3 s",
                    "~48 s", median(times) < 3.0)
        results.note(f"{F_BURST}: append -> all datasets+datablocks stored: "
                     f"{series(times, 's', 2)}; -> all in the ingested list: "
                     f"{series(done_times, 's', 2)}; attachments posted per burst: {attachments};"
                     f" requests per scan: {series(per_scan, '', 1).strip()}")
        results.add(F_CPU, f"{sizes.burst} scans, {runs}", f"{median(cpus):.3f} CPU-s",
                    "< 0.1 CPU-s", "~1.3 CPU-s", median(cpus) < 0.1)
        results.note(f"{F_CPU}: per burst {series(cpus, 'CPU-s')}; daemon threads during "
                     f"bursts: max {max(threads_seen, default=0)}; dev server + benchmark "
                     f"process meanwhile: {series(served, 'CPU-s', 2)} per burst")

        rss_mb = proc_kib(daemon.pid, "VmRSS") / 1024
        hwm_mb = proc_kib(daemon.pid, "VmHWM") / 1024
        scale = f"after {sizes.singles + sizes.burst * sizes.runs} scans"
        results.add(F_RSS, scale, f"{rss_mb:.0f} MB (peak {hwm_mb:.0f} MB)", "< 150 MB", "-",
                    max(rss_mb, hwm_mb) < 150)
        results.note(f"ingestion check: {len(server.datasets())} datasets stored, "
                     f"{len(server.datablocks())} datablocks, "
                     f"{len(server.attachments())} attachments, "
                     f"{ingested_count(factory)} lines in the ingested list "
                     f"(expected {expected} of each)")
    finally:
        finish_daemon(daemon, results, "ingestion daemon")


def make_dirs_beamtime(tmp: str, count: int, server: DevServerHandle) -> str:
    """A beamtime with ``count`` empty scan directories; returns its config path."""
    factory = BeamtimeFactory(os.path.join(tmp, f"dirs{count}"), beamtime_id=f"9900{count:04d}")
    open(factory.list_path(), "a", encoding="utf-8").close()
    parent = os.path.join(factory.beamtime_dir, "scans")
    for index in range(count):
        os.makedirs(os.path.join(parent, f"scan_dir_{index:05d}"))
    return write_config(factory, server.url)


def start_settled(config: str, count: int) -> Tuple[Daemon, float, dict]:
    """Start a daemon and wait until it watches ``count`` extra dirs; (daemon, seconds, info)."""
    daemon = Daemon(config)
    try:
        stamp, match = daemon.wait_line(WATCHING, 120)
    except BaseException:
        daemon.kill()
        raise
    settle = stamp - daemon.started
    first = daemon.find(r"following")
    info = {
        "scan_dirs": int(match.group(2)),
        "mode": match.group(4),
        "startup": (first[0] - daemon.started) if first else float("nan"),
        "walk": (stamp - first[0]) if first else float("nan"),
    }
    info["watches"] = inotify_watches(daemon.pid)
    info["all_watched"] = info["scan_dirs"] >= count and (
        info["mode"] != "inotify" or info["watches"] >= count)
    return daemon, settle, info


def bench_directories(sizes: Sizes, server: DevServerHandle, tmp: str, results: Results) -> None:
    """Figures 4-7: settle time, idle CPU, stop time and threads with many directories."""
    few_config = make_dirs_beamtime(tmp, sizes.few_dirs, server)
    many_config = make_dirs_beamtime(tmp, sizes.many_dirs, server)

    daemon, settle_few, info = start_settled(few_config, sizes.few_dirs)
    try:
        time.sleep(0.5)
        threads_few = daemon.threads()
    finally:
        stop_few = daemon.stop()
        daemon.kill()
    results.note(f"{sizes.few_dirs} dirs: settled in {settle_few:.3f} s "
                 f"({info['scan_dirs']} scan dirs, {info['watches']} inotify watches), "
                 f"threads {threads_few}, stop {stop_few:.3f} s")

    settles, stops, threads_many, idle = [], [], [], None
    for run in range(sizes.runs):
        daemon, settle, info = start_settled(many_config, sizes.many_dirs)
        try:
            settles.append(settle)
            results.note(
                f"{sizes.many_dirs} dirs run {run + 1}: settled {settle:.3f} s (start-up "
                f"{info['startup']:.3f} s + tree walk {info['walk']:.3f} s), "
                f"{info['scan_dirs']} scan dirs, {info['watches']} inotify watches, "
                f"mode {info['mode']}")
            if not info["all_watched"]:
                results.note(f"  NOT all {sizes.many_dirs} dirs watched")
            time.sleep(0.5)
            threads_many.append(daemon.threads())
            if run == 0:
                cpu0, start = daemon.cpu(), time.perf_counter()
                time.sleep(sizes.idle_seconds)
                idle = (daemon.cpu() - cpu0) / (time.perf_counter() - start) * 100.0
            rss = proc_kib(daemon.pid, "VmRSS") / 1024
        finally:
            stops.append(daemon.stop())
            daemon.kill()
        results.note(f"  threads {threads_many[-1]}, RSS {rss:.0f} MB, stop {stops[-1]:.3f} s")

    results.note(status_update_note(many_config))

    scale = f"{sizes.many_dirs} dirs" + (f", median of {sizes.runs}" if sizes.runs > 1 else "")
    results.add(F_SETTLE, scale, f"{median(settles):.2f} s", "< 3 s", "~25 s",
                median(settles) < 3.0)
    assert idle is not None
    results.add(F_IDLE, f"{sizes.many_dirs} dirs, {sizes.idle_seconds:.0f} s", f"{idle:.2f} %",
                "< 1 % of a core", "~170 %", idle < 1.0)
    results.add(F_STOP, scale, f"{median(stops):.3f} s", "< 1 s", "~20 s", median(stops) < 1.0)
    results.add(F_THREADS_FEW, f"{sizes.few_dirs} dirs", str(threads_few), "< 10", "206",
                threads_few < 10)
    many = max(threads_many)
    results.add(F_THREADS_MANY, f"{sizes.many_dirs} dirs", str(many),
                f"< 10 and = {threads_few}", "~1500", many < 10 and many == threads_few)


REINGEST = [sys.executable, "-m", "scingestor.cli.reingest"]
SUMMARY = re.compile(r"(\d+) list\(s\): (\d+) \w+, (\d+) unchanged, (\d+) failed")


def run_reingest(config: str) -> Tuple[float, str]:
    """Wall time of one ``scicat_dataset_ingest`` run, and its summary line with the CPU
    time of the tool and its metadata workers (reaped children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(REINGEST + ["-c", config], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, cwd=REPO, timeout=600)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise RuntimeError(f"scicat_dataset_ingest exited with {proc.returncode}:\n"
                           f"{proc.stderr[-2000:]}")
    match = SUMMARY.search(proc.stderr + proc.stdout)
    summary = match.group(0) if match else "(no summary line)"
    return elapsed, f"{summary}; tool CPU {cpu:.2f} s ({cpu / elapsed:.2f} cores busy)"


def bench_reingest(sizes: Sizes, server: DevServerHandle, clock: RequestClock, tmp: str,
                   results: Results) -> None:
    """Figure 9: ``scicat_dataset_ingest`` cold, then again with nothing changed."""
    template = BeamtimeFactory(os.path.join(tmp, "reingest-template"), beamtime_id="99003000")
    names = [f"scan_{index:05d}" for index in range(sizes.reingest)]
    for name in names:
        template.write_nexus_scan(name, points=sizes.points, png=True,
                                  detector_files=sizes.detector_files)
    template.append_list(None, *names)

    colds, config = [], ""
    for run in range(sizes.runs):
        server.reset()
        factory = BeamtimeFactory(os.path.join(tmp, f"reingest{run}"), beamtime_id="99003000")
        shutil.copytree(template.scandir, factory.scandir, dirs_exist_ok=True)
        config = write_config(factory, server.url)
        elapsed, summary = run_reingest(config)
        colds.append(elapsed)
        results.note(f"{F_COLD} run {run + 1}: {elapsed:.2f} s; {summary}; "
                     f"{len(server.datasets())} datasets stored")
    warms = []
    since = clock.mark()
    for _run in range(sizes.runs):
        elapsed, summary = run_reingest(config)
        warms.append(elapsed)
        results.note(f"{F_WARM}: {elapsed:.3f} s; {summary}")
    results.note(f"{F_WARM}: requests sent {len(clock.matching('GET', '', since))} GET, "
                 f"{len(clock.matching('POST', '', since))} POST, "
                 f"{len(clock.matching('PATCH', '', since))} PATCH")
    start = time.perf_counter()
    subprocess.run(REINGEST + ["--help"], capture_output=True, cwd=REPO, check=True)
    results.note(f"reingest CLI start-up alone (--help): {time.perf_counter() - start:.3f} s")
    scale = f"{sizes.reingest} scans" + (f", median of {sizes.runs}" if sizes.runs > 1 else "")
    results.add(F_COLD, scale, f"{median(colds):.2f} s", "< 5 s", "~50 s", median(colds) < 5.0)
    results.add(F_WARM, scale, f"{median(warms):.2f} s", "< 1 s", "~16 s", median(warms) < 1.0)


def bench_history(sizes: Sizes, server: DevServerHandle, tmp: str, results: Results) -> None:
    """Figures 10, 11: what the recent history costs (in this process, bench/history_cost.py)."""
    factory = BeamtimeFactory(os.path.join(tmp, "history"), beamtime_id="99001004")
    cost = history_cost.measure(factory, server.url, sizes.history_outcomes)
    scale = f"{cost.outcomes} outcomes"
    results.add(F_HISTORY_CPU, scale, f"{cost.cpu_us:.1f} us", "< 1000 us (1 % of 0.1 CPU-s)",
                "-", cost.cpu_us < 1000)
    cpu_rows = [row for row in results.rows if row.name == F_CPU and row.ok is not None]
    share = ""
    if cpu_rows:
        per_scan = float(cpu_rows[0].measured.split()[0])
        share = f" = {cost.cpu_us / (per_scan * 1e6) * 100:.3f} % of the measured {F_CPU}"
    results.note(f"{F_HISTORY_CPU}: recording an outcome (history + failed set) "
                 f"{cost.record_us:.1f} us, with the reads of a status update and of the "
                 f"history and failed set {cost.cpu_us:.1f} us{share}; one outcome in "
                 f"{history_cost.FAIL_EVERY} failed, failed set at most {cost.failed_max}")
    total = cost.records_kb + cost.buckets_kb
    results.add(F_HISTORY_MEM, f"{history_cost.HISTORY_LENGTH} records + 3600 rate buckets",
                f"{total:.0f} KB", "< 1024 KB", "-", total < 1024)
    results.note(f"{F_HISTORY_MEM}: {history_cost.HISTORY_LENGTH} records "
                 f"{cost.records_kb:.0f} KB, rate buckets of an hour with a success every "
                 f"second {cost.buckets_kb:.0f} KB (tracemalloc)")
    device = history_cost.device_json_us(factory, server.url, 20 if sizes.runs == 1 else 200)
    results.note(f"{F_HISTORY_CPU}: the device's RecentIngestions text of a full history, "
                 "made once per history change: "
                 + (f"{device:.0f} us" if device is not None else "not measured (no PyTango)"))


# --------------------------------------------------------------------------- main

def bench_frame(groups: Sequence[Tuple[Sequence[str], Callable[..., None]]], *, prefix: str,
                keep: bool, note: str) -> int:
    """The frame of a benchmark script: a dev server in this process and its request
    clock, a temporary directory, each group's ``measure(server, clock, tmp, results)``
    guarded for its figures, then the table. Exit status as in bench/README.md."""
    results = Results()
    tmp = tempfile.mkdtemp(prefix=prefix)
    server = start_dev_server()
    clock = RequestClock(server)
    began = time.perf_counter()
    ok = True
    try:
        progress(f"dev server {server.url}; work dir {tmp}")
        for figures, measure in groups:
            ok &= guarded(results, figures,
                          lambda measure=measure: measure(server, clock, tmp, results))
    finally:
        server.close()
        if keep:
            progress(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    results.note(f"{note}{'; ' if note else ''}benchmark wall time "
                 f"{time.perf_counter() - began:.1f} s; {os.cpu_count()} CPU(s); "
                 f"Python {sys.version.split()[0]}")
    print()
    results.print_table()
    return 0 if ok else 1


def finish_daemon(daemon: Daemon, results: Results, label: str = "daemon") -> None:
    """Note the daemon's logged problems, then stop it (kill it when it does not stop)."""
    for line in daemon.problems()[:5]:
        results.note(f"{label} log: {line}")
    try:
        daemon.stop()
    except (TimeoutError, RuntimeError) as exc:
        results.note(f"{label} stop: {exc}")
    daemon.kill()


def guarded(results: Results, names: Sequence[str], action: Callable[[], None]) -> bool:
    """Run one group of figures; returns False if the group could not be measured.

    A timeout is a measurement (the figure is MISSED); any other error marks the
    group's remaining figures as not measured and makes the run fail.
    """
    try:
        action()
    except TimeoutError as exc:
        for name in names:
            if name not in {row.name for row in results.rows}:
                results.add(name, "-", f"timeout ({exc})", "-", "-", False)
    except Exception as exc:  # noqa: BLE001 - report and go on with the other groups
        results.note(f"ERROR: {type(exc).__name__}: {exc}")
        for name in names:
            if name not in {row.name for row in results.rows}:
                results.add(name, "-", "error (see details)", "-", "-", None)
        return False
    return True


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="each figure once with small sizes (smoke test)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    options = parser.parse_args(argv)
    sizes = QUICK if options.quick else FULL
    return bench_frame([
        ((F_LATENCY, F_BURST, F_CPU, F_RSS),
         lambda server, clock, tmp, results: bench_ingestion(sizes, server, clock, tmp, results)),
        ((F_SETTLE, F_IDLE, F_STOP, F_THREADS_FEW, F_THREADS_MANY),
         lambda server, clock, tmp, results: bench_directories(sizes, server, tmp, results)),
        ((F_COLD, F_WARM),
         lambda server, clock, tmp, results: bench_reingest(sizes, server, clock, tmp, results)),
        ((F_HISTORY_CPU, F_HISTORY_MEM),
         lambda server, clock, tmp, results: bench_history(sizes, server, tmp, results)),
    ], prefix="scingestor-bench-", keep=options.keep,
        note="quick run" if options.quick else "full run")

if __name__ == "__main__":
    sys.exit(main())
