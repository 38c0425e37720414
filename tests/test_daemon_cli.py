"""The ``scicat_dataset_ingestor`` executable as a process: options, stopping, crashes."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from scingestor.testing.setup import wait_for, write_config

BT = "99001234"

# every test here runs against both SciCat API versions of the dev server
pytestmark = pytest.mark.usefixtures("api_version")
DAEMON = [sys.executable, "-m", "scingestor.cli.daemon"]


def run(args, timeout=60, **kwargs):
    return subprocess.run(
        DAEMON + list(args), capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL, **kwargs,
    )


def start(args):
    return subprocess.Popen(
        DAEMON + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL,
    )


def test_help_goes_to_stdout():
    result = run(["-h"])
    assert result.returncode == 0
    for option in ("--configuration", "--runtime", "--log", "--log-file", "--timestamps"):
        assert option in result.stdout
    assert result.stderr == ""


@pytest.mark.parametrize("option", ["--wrong", "+asd"])
def test_unknown_option_is_a_usage_error(option):
    result = run([option])
    assert result.returncode == 2
    assert result.stdout == ""
    assert "unrecognized arguments" in result.stderr and option in result.stderr


def test_no_configuration_warns_and_exits_0():
    result = run([])
    assert result.returncode == 0
    assert result.stdout == ""
    assert result.stderr.strip().splitlines()[-1] == (
        "WARNING : BeamtimeWatcher: Beamtime directories not defined"
    )


def test_bad_configuration_is_one_clear_line(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("beamtime_dirs: [/x]\ndataset_update_strategy: sometimes\n")
    result = run(["-c", str(cfg)])
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert str(cfg) in lines[0] and "dataset_update_strategy" in lines[0]
    assert "Traceback" not in result.stderr


def test_missing_configuration_file(tmp_path):
    result = run(["--config", str(tmp_path / "missing.yaml")])
    assert result.returncode == 1
    assert "missing.yaml" in result.stderr and "Traceback" not in result.stderr


def test_bad_log_level_is_a_usage_error():
    result = run(["-l", "DEBUG"])
    assert result.returncode == 2
    assert "invalid log level" in result.stderr


def test_runtime_ingests_and_stops_with_0(beamtime_factory, scicat_server, tmp_path):
    f = beamtime_factory
    f.write_nexus_scan("scan_00001")
    f.append_list(None, "scan_00001")
    cfg = write_config(f, scicat_server.url)
    log = tmp_path / "daemon.log"
    first = run(["-c", cfg, "-r3", "-t", "-f", str(log), "-ldebug"])
    assert first.returncode == 0, first.stderr
    assert first.stdout == "" and first.stderr == ""
    first_log = log.read_text()
    assert "CONFIGURATION:" in first_log
    assert scicat_server.dataset(f"{BT}/scan_00001") is not None
    year = time.strftime("%Y")
    assert all(line.startswith(year) for line in first_log.splitlines() if line.strip())
    second = run(["-c", cfg, "-r1", "-f", str(log)])
    assert second.returncode == 0
    assert (tmp_path / "daemon.log.1").read_text() == first_log
    assert len([r for r in scicat_server.requests_matching("POST", r"/Datasets$")]) == 1


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly(beamtime_factory, scicat_server, signum):
    f = beamtime_factory
    open(f.list_path(), "a").close()
    cfg = write_config(f, scicat_server.url)
    proc = start(["-c", cfg])
    try:
        f.write_nexus_scan("scan_00002")
        f.append_list(None, "scan_00002")
        wait_for(lambda: scicat_server.dataset(f"{BT}/scan_00002"), timeout=30)
        wait_for(lambda: [line.split(" ")[0] for line in f.read_ingested()] == ["scan_00002"])
        proc.send_signal(signum)
        proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    # handled: exit status 0 (not -signum, not a KeyboardInterrupt), the record kept
    assert proc.returncode == 0
    assert [line.split(" ")[0] for line in f.read_ingested()] == ["scan_00002"]


def test_kill_9_during_a_burst_then_restart_loses_nothing_and_duplicates_nothing(
        beamtime_factory, scicat_server):
    f = beamtime_factory
    names = [f"burst_{index:05d}" for index in range(1, 13)]
    for name in names:
        f.write_nexus_scan(name, detector_files=1)
    open(f.list_path(), "a").close()
    cfg = write_config(f, scicat_server.url)
    scicat_server.faults.set_latency(0.05)
    proc = start(["-c", cfg])
    try:
        wait_for(lambda: os.path.exists(f.list_path()))
        f.append_list(None, *names)
        wait_for(lambda: len(scicat_server.datasets()) >= 3, timeout=60)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    scicat_server.faults.clear()
    # a record torn by a crash (SIGKILL cannot tear one write, a power cut can): it must
    # not count, and the next append cuts it off (README "What we changed", crash safety)
    with open(f.ingested_path(), "a", encoding="utf-8") as handle:
        handle.write(f"{names[-1]} 1718000000.5 17")
    f.write_nexus_scan("after_kill", detector_files=1)
    f.append_list(None, "after_kill")
    names.append("after_kill")
    restarted = run(["-c", cfg, "-r8"], timeout=120)
    assert restarted.returncode == 0
    pids = sorted(doc["pid"] for doc in scicat_server.datasets())
    assert pids == sorted(f"{BT}/{name}" for name in names)
    for name in names:
        blocks = scicat_server.datablocks(f"{BT}/{name}")
        assert len(blocks) == 1, (name, len(blocks))
    lines = f.read_ingested()
    assert all(len(line.split(" ")) == 4 for line in lines), lines
    ingested = {line.rsplit(" ", 3)[0] for line in lines}
    assert ingested == set(names)


@pytest.mark.parametrize("seed", [1, 7, 11, 37])
def test_kill_9_at_a_random_point_of_a_concurrent_burst(beamtime_factory, scicat_server, seed):
    """max_scans_in_flight 4: several scans half-sent at the kill; none lost or doubled."""
    rng = random.Random(seed)
    f = beamtime_factory
    names = [f"conc_{index:05d}" for index in range(1, 17)]
    for name in names:
        f.write_nexus_scan(name, detector_files=1, png=True)
    open(f.list_path(), "a").close()
    cfg = write_config(f, scicat_server.url, max_scans_in_flight=4)
    scicat_server.faults.set_latency(0.05)
    proc = start(["-c", cfg])
    try:
        wait_for(lambda: os.path.exists(f.list_path()))
        f.append_list(None, *names)
        wait_for(lambda: scicat_server.requests_matching("POST", r"/[Dd]atasets$"), timeout=60)
        time.sleep(rng.uniform(0.0, 0.6))  # a random point of the burst (seeded; ~0.7 s)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    scicat_server.faults.clear()
    # restarted until every scan is recorded complete (no fixed run time), then stopped
    log = os.path.join(f.root, "restarted.log")
    restarted = start(["-c", cfg, "-f", log, "-l", "info"])
    try:
        wait_for(lambda: os.path.exists(log) and "Watching" in open(log).read(), timeout=60)
        wait_for(lambda: complete(f) == names, timeout=90)
        restarted.send_signal(signal.SIGTERM)
        _, stderr = restarted.communicate(timeout=30)
    finally:
        if restarted.poll() is None:
            restarted.kill()
    assert restarted.returncode == 0, stderr
    pids = sorted(doc["pid"] for doc in scicat_server.datasets())
    assert pids == sorted(f"{BT}/{name}" for name in names)
    for name in names:
        assert len(scicat_server.datablocks(f"{BT}/{name}")) == 1, name
        assert len(scicat_server.attachments(f"{BT}/{name}")) == 1, name
    errors = [line for line in open(log, encoding="utf-8") if "ERROR" in line]
    assert errors == []


def complete(f) -> list:
    """The scans recorded with all three parts sent, sorted."""
    done = set()
    for line in f.read_ingested():
        key, *stamps = line.rsplit(" ", 3)
        if len(stamps) == 3 and all(float(stamp) > 0 for stamp in stamps):
            done.add(key)
    return sorted(done)
