"""Metadata generation on several cores (scingestor/genpool.py, ``metadata_workers``).

docs/architecture.md "Metadata generation on several cores". A scan goes to a
worker process only when this process's slot is busy; the tests hold that slot
(``run_local``) to send a scan to a worker on purpose. Real NeXus files, the real
in-process nxsfileinfo in both processes.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
from typing import Any, Dict, Iterator, List

import pytest

from scingestor.beamtime import load_beamtime, scandir_context
from scingestor.config import config_from_mapping
from scingestor.genpool import GenerationPool, WorkerDied, worker_count
from scingestor.listproto import parse_entry
from scingestor.metadata import MeasurementState, MetadataGenerator
from scingestor.prepare import ScanPreparer
from scingestor.runner import GeneratorRunner
from scingestor.testing.setup import config_mapping, wait_for, write_config

BT = "99001234"


def documents(prepared: Any) -> Dict[str, Any]:
    """The three generated files of a prepared scan, as JSON."""
    out = {}
    for kind in ("dataset", "datablock", "attachment"):
        with open(getattr(prepared.paths, kind), encoding="utf-8") as handle:
            out[kind] = json.load(handle)
    return out


class Held:
    """Keeps the pool's own slot busy, so that the next scan goes to a worker process."""

    def __init__(self, pool: GenerationPool) -> None:
        self._release = threading.Event()
        self._holding = threading.Event()
        self._thread = threading.Thread(target=pool.run_local, args=(self._hold,))

    def _hold(self) -> None:
        self._holding.set()
        self._release.wait(30)

    def __enter__(self) -> Held:
        self._thread.start()
        self._holding.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        self._thread.join(10)


@pytest.fixture
def make_pool(beamtime_factory, scicat_server) -> Iterator[Any]:
    pools: List[GenerationPool] = []

    def make(workers: int = 2, **overrides: Any):
        cfg = config_from_mapping(config_mapping(beamtime_factory, scicat_server.url,
                                                 metadata_workers=workers, **overrides))
        preparer = ScanPreparer(cfg, MetadataGenerator(cfg, GeneratorRunner(cfg)))
        pool = GenerationPool(cfg, preparer)
        pools.append(pool)
        ctx = scandir_context(cfg, load_beamtime(beamtime_factory.metadata_path),
                              beamtime_factory.scandir)
        return pool, ctx

    yield make
    for pool in pools:
        pool.close()


def prepare(pool: GenerationPool, ctx: Any, name: str) -> Any:
    return pool.prepare(ctx, parse_entry(name, 1), MeasurementState(), frozenset())


def test_a_worker_process_writes_the_same_files_as_this_process(beamtime_factory, make_pool):
    f = beamtime_factory
    f.write_nexus_scan("scan_00001", detector_files=2, png=True)
    pool, ctx = make_pool()
    here = prepare(pool, ctx, "scan_00001")
    assert pool.processes() == []  # the own slot was free: no worker process started
    expected = documents(here)
    for path in (here.paths.dataset, here.paths.datablock, here.paths.attachment):
        os.unlink(path)
    with Held(pool):
        there = prepare(pool, ctx, "scan_00001")
    assert len(pool.processes()) == 1
    assert documents(there) == expected
    assert there.dataset == here.dataset
    assert there.datablock.documents == here.datablock.documents


def test_worker_log_records_reach_this_process(beamtime_factory, make_pool, caplog):
    f = beamtime_factory
    f.write_nexus_scan("scan_00002")
    pool, ctx = make_pool(log_generator_commands=True)
    caplog.set_level(logging.INFO, logger="scingestor")
    with Held(pool):
        prepare(pool, ctx, "scan_00002")
    (worker,) = pool.processes()
    from_worker = [r for r in caplog.records
                   if r.process == worker and r.name == "scingestor.runner"]
    # one per generator: dataset, datablock, attachment (the plot of the NeXus file)
    assert len(from_worker) == 3
    assert all(r.levelno == logging.INFO for r in from_worker)


def test_a_worker_that_dies_fails_only_its_scan_and_is_replaced(beamtime_factory, make_pool):
    f = beamtime_factory
    f.write_nexus_scan("scan_00003")
    marker = os.path.join(f.root, "killed-once")
    # kills the process that runs it, but only a metadata worker, and only once
    template = ("if grep -q genworker /proc/$PPID/cmdline && ! test -e " + marker
                + "; then touch " + marker + "; kill -9 $PPID; fi; "
                + os.path.join(os.path.dirname(sys.executable), "")
                + config_from_mapping({}).datablock_metadata_generator)
    pool, ctx = make_pool(datablock_metadata_generator=template)
    with Held(pool):
        with pytest.raises(WorkerDied):
            prepare(pool, ctx, "scan_00003")
        assert os.path.exists(marker)
        assert pool.processes() == []
        again = prepare(pool, ctx, "scan_00003")  # a new worker process
    assert again.datablock.exists and again.dataset is not None
    assert len(pool.processes()) == 1


def test_one_slot_never_starts_a_process(make_pool, beamtime_factory):
    pool, _ = make_pool(workers=1)
    assert not pool.parallel
    assert worker_count(0) >= 1 and worker_count(3) == 3
    assert pool.processes() == []


def test_a_burst_is_generated_in_several_processes(beamtime_factory, scicat_server,
                                                   service_factory, caplog):
    f = beamtime_factory
    names = [f"par_{index:05d}" for index in range(1, 13)]
    for name in names:
        # a FIO scan's thumbnail is plotted (tens of ms per scan), so the metadata
        # stages are too costly to stay in the worker thread (pipeline._start)
        f.write_fio_scan(name, points=100)
    f.append_list(None, *names)
    caplog.set_level(logging.INFO, logger="scingestor")
    service_factory(metadata_workers=2, log_generator_commands=True)
    wait_for(lambda: len(f.read_ingested()) == len(names), timeout=90)
    generated_by = {r.process for r in caplog.records if r.name == "scingestor.runner"}
    assert os.getpid() in generated_by and len(generated_by) == 2
    for name in names:
        pid = f"{BT}/{name}"
        assert scicat_server.dataset(pid)
        assert len(scicat_server.datablocks(pid)) == 1
        assert len(scicat_server.attachments(pid)) == 1
    assert sorted(line.rsplit(" ", 3)[0] for line in f.read_ingested()) == names


def worker_children(pid: int) -> List[int]:
    """Metadata worker processes whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as handle:
                parent = int(handle.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                cmdline = handle.read()
        except (OSError, ValueError, IndexError):
            continue
        if parent == pid and b"scingestor.genworker" in cmdline:
            found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_worker_processes_end_with_a_killed_daemon(beamtime_factory, scicat_server):
    f = beamtime_factory
    names = [f"orphan_{index:05d}" for index in range(1, 13)]
    for name in names:
        f.write_fio_scan(name, points=100)  # plotted thumbnails: made in several processes
    open(f.list_path(), "a").close()
    cfg = write_config(f, scicat_server.url, metadata_workers=2)
    scicat_server.faults.set_latency(0.05)
    daemon = subprocess.Popen([sys.executable, "-m", "scingestor.cli.daemon", "-c", cfg],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: os.path.exists(f.list_path()))
        f.append_list(None, *names)
        workers = wait_for(lambda: worker_children(daemon.pid), timeout=60)
        os.kill(daemon.pid, signal.SIGKILL)
        daemon.wait(10)
    finally:
        if daemon.poll() is None:
            daemon.kill()
    # their input pipe is closed with the daemon: they end, no orphan keeps running
    wait_for(lambda: not any(alive(pid) for pid in workers), timeout=30)
