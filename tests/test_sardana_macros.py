"""The SciCat macros end to end in a real Sardana MacroServer.

One Tango database, one Sardana server (dummy motor, counter/timer and
measurement group) and one ``SciCatIngestor`` device for the whole module;
scans are real ``ascan``s writing ``.h5`` (NXscanH5) and ``.fio`` files into a
factory beamtime, ingested into a development SciCat server.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from dataclasses import dataclass
from typing import List, Optional

import pytest
from parts import import_part

tango = import_part("tango", "tango")
import_part("sardana", "sardana")

from sardana_env import SardanaEnv  # noqa: E402

from sardana_macros import macro_path  # noqa: E402
from scingestor.config import config_from_mapping  # noqa: E402
from scingestor.service import IngestorService  # noqa: E402
from scingestor.testing import BeamtimeFactory, start_dev_server  # noqa: E402
from scingestor.testing.setup import config_mapping, wait_for, write_config  # noqa: E402
from scingestor.testing.tango_env import DeviceServer, ProcessExited  # noqa: E402

logger = logging.getLogger(__name__)

SARDANA = os.path.join(os.path.dirname(sys.executable), "Sardana")
DEVICE = "test/scicatingestor/1"
TS = re.compile(r":\d+\.\d+(e[-+]?\d+)?$")
OUR_VARS = ("ScanDir", "ScanFile", "AppendSciCatDataset", "NXSAppendSciCatDataset",
            "SciCatAutoGrouping", "SciCatMeasurements", "SciCatIngestorDevice",
            "BeamtimeFilePath", "ScanNames")

pytestmark = pytest.mark.part("sardana", os.path.exists(SARDANA),
                              f"no Sardana executable at {SARDANA}")


@dataclass
class Lab:
    sardana: SardanaEnv
    factory: BeamtimeFactory
    server: object
    device: Optional[str]
    device_problem: str

    @property
    def bt(self) -> str:
        return self.factory.beamtime_id


def _start_device(env: SardanaEnv, factory: BeamtimeFactory, url: str) -> str:
    """Start the SciCatIngestor device; '' on success, else the reason and its output."""
    config = write_config(factory, url)
    env.register_server("SciCatIngestor/scitest", "SciCatIngestor", DEVICE,
                        {"ConfigFile": [config]})
    server = DeviceServer(env.tango, [sys.executable, "-m", "tango_ds.SciCatIngestor", "scitest",
                                      "-ORBendPoint", "giop:tcp:127.0.0.1:"], DEVICE,
                          "ingestor.log")
    try:
        server.start(timeout=120)
        wait_for(lambda: _device_state(server.proxy) in (
            tango.DevState.ON, tango.DevState.RUNNING, tango.DevState.ALARM), timeout=60)
    except (TimeoutError, ProcessExited) as exc:
        return f"SciCatIngestor device did not start: {exc}\nits output:\n{server.log()}"
    return ""


def _device_state(proxy: tango.DeviceProxy) -> Optional[tango.DevState]:
    try:
        return proxy.state()
    except tango.DevFailed:
        return None


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("sardana_lab")
    factory = BeamtimeFactory(str(root))
    server = start_dev_server()
    workdir = root / "tango"
    workdir.mkdir()
    env = SardanaEnv(str(workdir), [macro_path()])
    service = None
    try:
        env.start()
        run = env.run_macro(["defgh", "scicat_post_scan", "post-scan"])
        assert run.status == "finish", run.text()
        problem = _start_device(env, factory, server.url)
        if problem:  # still ingest, with the core service in this process
            service = IngestorService(config_from_mapping(config_mapping(factory, server.url)))
            service.start()
        yield Lab(env, factory, server, None if problem else DEVICE, problem)
    finally:
        env.stop()
        if service is not None:
            service.stop()
        server.stop()


def _reset(lab: Lab, name: str, **values) -> str:
    """A fresh scan directory ``raw/<name>`` and a clean environment."""
    scandir = lab.factory.make_scandir(os.path.join("raw", name))
    lab.sardana.del_env(*OUR_VARS)
    settings = {"ScanDir": scandir, "ScanFile": ["ctrace.h5", "ctrace.fio"],
                "AppendSciCatDataset": True, "BeamtimeFilePath": lab.factory.beamtime_dir}
    settings.update(values)
    lab.sardana.set_env(**settings)
    return scandir


def _list_path(lab: Lab, scandir: str) -> str:
    return os.path.join(scandir, f"scicat-datasets-{lab.bt}.lst")


def _lines(path: str) -> List[str]:
    """The list file with the timestamps replaced by ``:<ts>``."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    return [TS.sub(":<ts>", line) for line in text.split("\n")]


def _run(lab: Lab, *macro: str):
    run = lab.sardana.run_macro(list(macro))
    assert run.status == "finish", run.text()
    return run


def _scan(lab: Lab) -> int:
    run = _run(lab, "ascan", "mot01", "0", "1", "2", "0.01")
    assert not run.errors, run.text()
    return int(lab.sardana.get_env()["ScanID"])


def _pids(lab: Lab) -> set:
    return {doc["pid"] for doc in lab.server.datasets()}


def _wait_pids(lab: Lab, *names: str, timeout: float = 120) -> None:
    wanted = {f"{lab.bt}/{name}" for name in names}
    try:
        wait_for(lambda: wanted <= _pids(lab), timeout=timeout, interval=0.5)
    except TimeoutError:
        pytest.fail(f"not ingested: {sorted(wanted - _pids(lab))}; have {sorted(_pids(lab))}")


def test_manual_measurement_around_two_scans(lab):
    scandir = _reset(lab, "manual")
    listfile = _list_path(lab, scandir)
    run = _run(lab, "start_measurement", "ptycho1")
    assert f"Appending '__command__ start ptycho1' to {listfile}" in run.output
    assert f"Measurement 'ptycho1' in '{scandir}' started" in run.output
    run = _run(lab, "show_current_measurement")
    assert f"Current Measurement for '{scandir}' is 'ptycho1'" in run.output
    first = _scan(lab)
    run = _run(lab, "update_measurement")
    assert f"Measurement 'ptycho1' in '{scandir}' updated" in run.output
    second = _scan(lab)
    run = _run(lab, "stop_measurement")
    assert f"Measurement 'ptycho1' in '{scandir}' stopped" in run.output
    assert _lines(listfile) == [
        "", "__command__ start ptycho1", f"ctrace_{first:05d}", "__command__ stop",
        "ptycho1:<ts>", "__command__ start ptycho1", f"ctrace_{second:05d}",
        "__command__ stop", "ptycho1:<ts>",
    ]
    assert os.path.isfile(os.path.join(scandir, "ctrace.h5"))
    assert os.path.isfile(os.path.join(scandir, f"ctrace_{second:05d}.fio"))
    assert scandir not in lab.sardana.get_env().get("SciCatMeasurements", {})
    run = _run(lab, "show_current_measurement")
    assert f"Current Measurement for '{scandir}' not set" in run.output
    _wait_pids(lab, f"ctrace_{first:05d}", f"ctrace_{second:05d}", "ptycho1")
    doc = lab.server.dataset(f"{lab.bt}/ptycho1")
    assert sorted(doc.get("inputDatasets") or doc["scientificMetadata"]["inputDatasets"]) == [
        f"{lab.bt}/ctrace_{first:05d}", f"{lab.bt}/ctrace_{second:05d}"]


def test_make_measurement_takes_the_last_scan(lab):
    scandir = _reset(lab, "make", ScanFile=["calib.h5", "calib.fio"])
    sid = _scan(lab)
    run = _run(lab, "make_measurement", "calibset")
    assert f"Measurement 'calibset' in '{scandir}' started" in run.output
    _run(lab, "stop_measurement")
    assert _lines(_list_path(lab, scandir)) == [
        "", f"calib_{sid:05d}", "__command__ start calibset", f"calib_{sid:05d}:<ts>",
        "__command__ stop", "calibset:<ts>",
    ]
    _wait_pids(lab, f"calib_{sid:05d}", "calibset")


def test_auto_grouping(lab):
    scandir = _reset(lab, "auto", ScanFile=["align.h5", "align.fio"], SciCatAutoGrouping=True)
    first = _scan(lab)
    second = _scan(lab)
    lab.sardana.set_env(ScanFile=["sampleA.h5", "sampleA.fio"])
    third = _scan(lab)
    run = _run(lab, "start_measurement", "mixA")
    assert f"Measurement 'mixA' in '{scandir}' started" in run.output
    fourth = _scan(lab)
    assert scandir not in lab.sardana.get_env().get("SciCatMeasurements", {})
    lab.sardana.set_env(NXSAppendSciCatDataset=True)  # the NeXus writer would list it
    _scan(lab)
    assert _lines(_list_path(lab, scandir)) == [
        "",
        "__command__ start align", f"align_{first:05d}", "__command__ stop", "align:<ts>",
        "__command__ start align", f"align_{second:05d}", "__command__ stop", "align:<ts>",
        "__command__ start sampleA", f"sampleA_{third:05d}", "__command__ stop",
        "sampleA:<ts>",
        "__command__ start mixA",
        "__command__ stop", "mixA:<ts>", "__command__ start sampleA",
        f"sampleA_{fourth:05d}", "__command__ stop", "sampleA:<ts>",
    ]
    _wait_pids(lab, f"align_{second:05d}", "align", f"sampleA_{fourth:05d}", "sampleA")


def test_clear_errors(lab, tmp_path):
    _reset(lab, "errors")
    lab.sardana.del_env("ScanDir")
    for macro in ("start_measurement", "stop_measurement", "update_measurement",
                  "show_current_measurement"):
        run = _run(lab, macro)
        assert "ScanDir is not set" in run.errors, run.text()

    run = _run(lab, "start_measurement", "bad:name", lab.factory.scandir)
    assert any("contains ':'" in line for line in run.errors), run.text()

    outside = tmp_path / "nobeamtime"
    outside.mkdir()
    lab.sardana.set_env(ScanDir=str(outside))
    run = _run(lab, "start_measurement", "m1")
    assert any("no beamtime file" in line for line in run.errors), run.text()
    run = _run(lab, "ascan", "mot01", "0", "1", "2", "0.01")  # the scan itself succeeds
    assert any("no beamtime file" in line for line in run.errors), run.text()
    sid = int(lab.sardana.get_env()["ScanID"])
    assert os.path.isfile(outside / f"ctrace_{sid:05d}.fio")
    assert not list(outside.glob("*.lst"))

    locked = lab.factory.make_scandir("raw/locked")
    os.mkdir(_list_path(lab, locked))
    lab.sardana.set_env(ScanDir=locked)
    run = _run(lab, "start_measurement", "m1")
    assert any("cannot open list file" in line for line in run.errors), run.text()
    assert "SciCatMeasurements" not in lab.sardana.get_env() or \
        locked not in lab.sardana.get_env()["SciCatMeasurements"]


def test_unknown_device_falls_back_to_the_file(lab):
    scandir = _reset(lab, "nodevice", SciCatIngestorDevice="test/nosuch/99")
    run = _run(lab, "start_measurement", "fb1")
    assert any("'test/nosuch/99' cannot be reached" in line for line in run.warnings), run.text()
    assert f"Measurement 'fb1' in '{scandir}' started" in run.output
    run = _run(lab, "show_current_measurement")
    assert f"Current Measurement for '{scandir}' is 'fb1'" in run.output
    _run(lab, "stop_measurement")
    assert _lines(_list_path(lab, scandir)) == [
        "", "__command__ start fb1", "__command__ stop", "fb1:<ts>"]


def test_trailing_slash_scandir_shares_one_key(lab):
    scandir = _reset(lab, "slash")
    run = _run(lab, "start_measurement", "sl1", scandir + "//")
    assert f"Measurement 'sl1' in '{scandir}' started" in run.output
    env = lab.sardana.get_env()
    assert env["ScanDir"] == scandir
    assert env["SciCatMeasurements"][scandir] == "sl1"
    lab.sardana.set_env(ScanDir=scandir + "/", SciCatMeasurements={scandir + "/": "sl1"})
    run = _run(lab, "stop_measurement")
    assert f"Measurement 'sl1' in '{scandir}' stopped" in run.output
    assert _lines(_list_path(lab, scandir)) == [
        "", "__command__ start sl1", "__command__ stop", "sl1:<ts>"]


def test_device_path(lab):
    if lab.device is None:  # a device that does not start is a failure, never a skip
        pytest.fail(lab.device_problem)
    scandir = _reset(lab, "device", SciCatIngestorDevice=DEVICE)
    listfile = _list_path(lab, scandir)
    # the directory has no list yet: the device writes the record if it already watches the
    # directory, otherwise it refuses and the macro writes the same record itself
    run = _run(lab, "start_measurement", "dev1")
    assert f"Measurement 'dev1' in '{scandir}' started" in run.output, run.text()
    if run.warnings:
        assert any("StartMeasurementIn failed" in line for line in run.warnings), run.text()
    first = _scan(lab)
    _wait_pids(lab, f"ctrace_{first:05d}")
    # the directory is watched now: the device appends the records
    run = _run(lab, "update_measurement")
    assert not run.warnings, run.text()
    assert not any(line.startswith("Appending") for line in run.output), run.text()
    assert f"Measurement 'dev1' in '{scandir}' updated" in run.output
    second = _scan(lab)
    run = _run(lab, "stop_measurement")
    assert not run.warnings and f"Measurement 'dev1' in '{scandir}' stopped" in run.output
    run = _run(lab, "make_measurement", "dev2")
    assert not run.warnings, run.text()
    run = _run(lab, "start_measurement", "dev3")
    assert not run.warnings, run.text()
    run = _run(lab, "start_measurement")
    assert f"Measurement 'dev3' in '{scandir}' stopped" in run.output
    run = _run(lab, "show_current_measurement")
    assert any("queue length" in line and DEVICE in line for line in run.output), run.text()
    assert _lines(listfile) == [
        "", "__command__ start dev1", f"ctrace_{first:05d}", "__command__ stop", "dev1:<ts>",
        "__command__ start dev1", f"ctrace_{second:05d}", "__command__ stop", "dev1:<ts>",
        "__command__ start dev2", f"ctrace_{second:05d}:<ts>",
        "__command__ stop", "dev2:<ts>", "__command__ start dev3",
        "__command__ stop", "dev3:<ts>",
    ]
    _wait_pids(lab, f"ctrace_{second:05d}", "dev1", "dev2")



def test_a_measurement_started_in_the_panel_is_seen_by_the_macros(lab):
    """The Taurus panel (a real one, in a child process) opens a measurement through the
    device; the macros find it in the list (no SciCatMeasurements involved) and close it."""
    from parts import require_part
    from test_panel import needs_qt, run_child

    require_part(*needs_qt.args)  # the "taurus" part: a skip locally, a failure in CI
    if lab.device is None:
        pytest.fail(lab.device_problem)
    scandir = _reset(lab, "panel", SciCatIngestorDevice=DEVICE)
    listfile = _list_path(lab, scandir)
    open(listfile, "a", encoding="utf-8").close()  # the ingestor watches lists
    proxy = tango.DeviceProxy(lab.sardana.full_name(DEVICE))
    wait_for(lambda: scandir in (proxy.WatchedScanDirs or ()), timeout=60)
    proxy.ScanDir = lab.factory.scandir  # another directory: the panel must not use it
    seen = run_child(lab.sardana.workdir, "start", "--device", lab.sardana.full_name(DEVICE),
                     "--scandir", scandir, "--measurement", "panel1")
    command, ok, text = seen["start"]
    assert (command, ok) == ("StartMeasurementIn", True), text
    assert _lines(listfile) == ["", "__command__ start panel1"]
    assert proxy.ScanDir == lab.factory.scandir

    run = _run(lab, "show_current_measurement")
    assert f"Current Measurement for '{scandir}' is 'panel1'" in run.output, run.text()
    first = _scan(lab)
    run = _run(lab, "start_measurement", "mac1")
    assert f"Measurement 'panel1' in '{scandir}' stopped" in run.output, run.text()
    assert lab.sardana.get_env()["SciCatMeasurements"][scandir] == "mac1"  # the mirror
    _run(lab, "stop_measurement")
    assert _lines(listfile) == [
        "", "__command__ start panel1", f"ctrace_{first:05d}", "__command__ stop",
        "panel1:<ts>", "__command__ start mac1", "__command__ stop", "mac1:<ts>"]
    assert proxy.ScanDir == lab.factory.scandir  # nobody moved it
    assert scandir not in lab.sardana.get_env()["SciCatMeasurements"]
    _wait_pids(lab, f"ctrace_{first:05d}", "panel1")


REJECTED = {"message": ["contactEmail must be an email"]}


def test_scicat_status_and_scicat_reingest(lab):
    """The two spock macros, through the device and from the list files (``conf`` file)."""
    if lab.device is None:
        pytest.fail(lab.device_problem)
    scandir = _reset(lab, "view", SciCatIngestorDevice=DEVICE)
    proxy = tango.DeviceProxy(lab.sardana.full_name(DEVICE))
    good = f"ctrace_{_scan(lab):05d}"
    _wait_pids(lab, good)
    # every dataset POST is refused until cleared: the next scan fails (and its retries)
    lab.server.faults.fail_next(1000, status=400, body=REJECTED, method="POST",
                                path=r"datasets$")
    try:
        bad = f"ctrace_{_scan(lab):05d}"
        wait_for(lambda: any(item["scan"] == bad for item in json.loads(proxy.FailedScans)),
                 timeout=60)
        wait_for(lambda: any(line.startswith(f"{bad} -1")
                             for line in lab.factory.read_ingested(scandir)), timeout=60)
        run = _run(lab, "scicat_status")
        assert not run.warnings and not run.errors, run.text()
        assert any(line.startswith("SciCat ingestor") for line in run.output), run.text()
        assert f"Recent ingestions in '{scandir}' (newest first):" in run.output, run.text()
        assert any(good in line and " created " in line and f"{lab.bt}/{good}" in line
                   for line in run.output), run.text()
        assert any(bad in line and " failed " in line and "contactEmail" in line
                   for line in run.output), run.text()
        failed_at = run.output.index(
            f"Failed scans in '{scandir}' (scicat_reingest <scan> sends one now):")
        assert run.output[failed_at + 1].startswith(f"  {bad}: "), run.text()
        run = _run(lab, "scicat_status", "file")  # the same from the list files
        assert any("(no ingestor device)" in line for line in run.output), run.text()
        assert f"  {good}  ingested" in run.output and f"  {bad}  failed" in run.output
        assert f"  {bad}: recorded as failed" in run.output, run.text()
    finally:
        lab.server.faults.clear()
    run = _run(lab, "scicat_reingest", bad)
    assert not run.errors, run.text()
    assert any("sent again" in line or "re-ingested" in line for line in run.output), run.text()
    _wait_pids(lab, bad)
    wait_for(lambda: json.loads(proxy.FailedScans) == [], timeout=60)
    run = _run(lab, "scicat_status")
    assert f"No failed scan in '{scandir}'" in run.output, run.text()
    # a scan that did not fail: re-ingested (a `<scan>:<ts>` line), also from the file route
    run = _run(lab, "scicat_reingest", good, "file")
    assert f"1 scan(s) in '{scandir}' sent again" in run.output, run.text()
    assert _lines(_list_path(lab, scandir))[-1] == f"{good}:<ts>"
    run = _run(lab, "scicat_reingest", "bad name")
    assert run.errors, run.text()
