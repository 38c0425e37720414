"""The Tango device ``SciCatIngestor`` in its own process, with real scans and the dev server.

The device server is started the way it runs in production, as
``python -m tango_ds.SciCatIngestor test`` (an exec'd subprocess), with its device
properties in a Tango file database (``-file=``) instead of a database server, the
same mechanism as ``tango.test_context.DeviceTestContext`` (``ingestor_servers`` in
tests/tango_helpers.py, over ``scingestor.testing.tango_env``). We do not use the
context's ``process=True`` itself: it *forks* the pytest process, and after the
first test that process holds a live omniORB/ZeroMQ client and the dev server's
listening socket. The forked servers then hang at start-up now and then, and the
dev server cannot reopen its port after ``refuse_connections`` because the child
still holds it. The dev server runs as a thread of the pytest process; the device
talks HTTP to it.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any, Callable, Iterator, List

import pytest
from parts import import_part

tango = import_part("tango", "tango")

from tango_helpers import TIMEOUT, EventLog, ingestor_servers, wait_device  # noqa: E402

from scingestor.testing.setup import wait_for, write_config  # noqa: E402
from scingestor.testing.tango_env import DeviceServer  # noqa: E402

BT = "99001234"
DevState = tango.DevState


@pytest.fixture
def device_server(tmp_path, beamtime_factory, scicat_server) -> Iterator[Callable[..., Any]]:
    """Start ``SciCatIngestor`` with properties; returns the server. Stopped at teardown."""
    with ingestor_servers(str(tmp_path / "servers")) as start_server:

        def start(config: str = "", **properties: Any) -> DeviceServer:
            return start_server(**{
                "ConfigFile": config or write_config(beamtime_factory, scicat_server.url),
                **properties})

        yield start


@pytest.fixture
def start_device(device_server) -> Callable[..., Any]:
    """Like ``device_server`` but returns the DeviceProxy."""
    return lambda config="", **properties: device_server(config, **properties).proxy


def subscribe(proxy: Any, name: str) -> EventLog:
    log = EventLog()
    proxy.subscribe_event(name, tango.EventType.CHANGE_EVENT, log)
    return log


def touch_list(factory: Any, scandir: Any = None) -> None:
    """Create an empty dataset list (``append_list`` without records writes nothing)."""
    with open(factory.list_path(scandir), "a", encoding="utf-8"):
        pass


def list_lines(factory: Any, scandir: Any = None) -> List[str]:
    with open(factory.list_path(scandir), encoding="utf-8") as handle:
        return [line for line in handle.read().split("\n") if line.strip()]


def wait_state(proxy: Any, state: Any) -> None:
    wait_device(proxy, lambda: proxy.state() == state, f"state {state}")


def test_appended_scans_move_the_attributes_and_push_change_events(
        beamtime_factory, scicat_server, start_device):
    f = beamtime_factory
    touch_list(f)
    proxy = start_device()
    wait_state(proxy, DevState.ON)
    assert proxy.IngestedCount == 0 and proxy.LastIngestedScan == ""
    ingested = subscribe(proxy, "IngestedCount")
    last_scan = subscribe(proxy, "LastIngestedScan")
    queue = subscribe(proxy, "QueueLength")
    states = subscribe(proxy, "State")
    f.write_nexus_scan("scan_00001")
    f.write_nexus_scan("scan_00002")
    f.append_list(None, "scan_00001", "scan_00002")
    wait_for(lambda: ingested.seen(lambda v: v == 2), timeout=TIMEOUT)
    assert last_scan.seen(lambda v: v == "scan_00002")
    assert queue.seen(lambda v: v > 0) and queue.seen(lambda v: v == 0)
    wait_for(lambda: states.seen(lambda v: v == DevState.ON), timeout=TIMEOUT)
    assert proxy.IngestedCount == 2 and proxy.FailedCount == 0
    assert proxy.LastIngestedScan == "scan_00002"
    assert scicat_server.dataset(f"{BT}/scan_00001") is not None
    assert scicat_server.dataset(f"{BT}/scan_00002") is not None
    assert proxy.SciCatReachable is True
    assert proxy.SciCatUrl == scicat_server.url
    assert list(proxy.WatchedBeamtimes) and proxy.WatchedScanDirCount >= 1
    assert proxy.QueueLength == 0


def test_attributes_are_described_for_taurus(start_device):
    proxy = start_device()
    config = proxy.get_attribute_config("QueueLength")
    assert config.label == "Queue length" and config.unit == "scans"
    assert config.format == "%d" and config.description
    for name in ("CurrentMeasurement", "CurrentMeasurements", "ScanDir", "LastError",
                 "LastErrorTime", "IngestedCount", "FailedCount", "LastIngestedScan",
                 "WatchedBeamtimes", "WatchedScanDirCount", "SciCatReachable", "SciCatUrl",
                 "StatusReport", "ReingestProgress", "PendingRetries"):
        config = proxy.get_attribute_config(name)
        assert config.label != name and "No description" not in config.description, name
    info = proxy.info()
    assert info.dev_class == "SciCatIngestor"
    wait_state(proxy, DevState.ON)
    report = proxy.StatusReport
    assert '"state": "ON"' in report and '"ingested_count": 0' in report


def test_watched_lists_are_read_on_demand_and_the_report_has_counts(
        beamtime_factory, start_device):
    f = beamtime_factory
    calib = f.make_scandir("calib")
    touch_list(f)
    proxy = start_device()
    wait_state(proxy, DevState.ON)
    expected = sorted(root for root, _, _ in os.walk(f.beamtime_dir))
    assert calib in expected and list(proxy.WatchedScanDirs) == expected
    assert proxy.WatchedScanDirCount == len(expected)
    assert list(proxy.WatchedBeamtimes) == [f.metadata_path]
    report = json.loads(proxy.StatusReport)
    assert "watched_scandirs" not in report and "watched_beamtimes" not in report
    assert report["watched_scandir_count"] == len(expected)
    assert report["watched_beamtime_count"] == 1 and report["watch_version"] > 0
    counts = subscribe(proxy, "WatchedScanDirCount")
    beamtimes = subscribe(proxy, "WatchedBeamtimes")
    wait_for(lambda: beamtimes.seen(lambda v: list(v) == [f.metadata_path]), timeout=TIMEOUT)
    later = f.make_scandir("later")
    wait_for(lambda: counts.seen(lambda v: v == len(expected) + 1), timeout=TIMEOUT)
    assert later in proxy.WatchedScanDirs
    assert json.loads(proxy.StatusReport)["watch_version"] > report["watch_version"]


def test_measurement_commands_append_records_and_the_measurement_is_ingested(
        beamtime_factory, scicat_server, start_device):
    f = beamtime_factory
    f.write_nexus_scan("scan_00001")
    f.append_list(None, "scan_00001")
    proxy = start_device()
    wait_for(lambda: proxy.IngestedCount == 1, timeout=TIMEOUT)
    current = subscribe(proxy, "CurrentMeasurement")
    assert proxy.StartMeasurement("ptycho1") == f.scandir
    assert list_lines(f)[-1] == "__command__ start ptycho1"
    wait_for(lambda: current.seen(lambda v: v == "ptycho1"), timeout=TIMEOUT)
    assert list(proxy.CurrentMeasurements) == [f"{f.scandir}: ptycho1"]
    f.write_nexus_scan("scan_00002")
    f.append_list(None, "scan_00002")
    wait_for(lambda: proxy.IngestedCount >= 2, timeout=TIMEOUT)
    assert proxy.StopMeasurement() == "ptycho1"
    lines = list_lines(f)
    assert lines[-2] == "__command__ stop" and lines[-1].startswith("ptycho1:")
    wait_for(lambda: scicat_server.dataset(f"{BT}/ptycho1") is not None, timeout=TIMEOUT)
    wait_for(lambda: current.seen(lambda v: v == "") and proxy.CurrentMeasurement == "",
             timeout=TIMEOUT)
    f.write_nexus_scan("scan_00003")
    f.append_list(None, "scan_00003")
    wait_for(lambda: proxy.IngestedCount >= 4, timeout=TIMEOUT)
    assert proxy.MakeMeasurement("single") == f.scandir
    lines = list_lines(f)
    assert lines[-2] == "__command__ start single" and lines[-1].startswith("scan_00003:")
    assert proxy.UpdateMeasurement() == "single"
    lines = list_lines(f)
    assert lines[-3:-1] == ["__command__ stop", lines[-2]] and lines[-2].startswith("single:")
    assert lines[-1] == "__command__ start single"
    wait_for(lambda: scicat_server.dataset(f"{BT}/single") is not None, timeout=TIMEOUT)


def test_scan_dir_selects_the_directory_of_the_measurement_commands(
        beamtime_factory, start_device):
    f = beamtime_factory
    other = f.make_scandir("calib")
    touch_list(f)
    touch_list(f, other)
    proxy = start_device()
    wait_device(proxy, lambda: other in (proxy.WatchedScanDirs or ()), f"{other} watched")
    wait_state(proxy, DevState.ON)
    assert proxy.StartMeasurementInDir(["calib1", other]) == other
    assert list_lines(f, other)[-1] == "__command__ start calib1"
    assert list_lines(f) == []
    proxy.ScanDir = other
    assert proxy.ScanDir == other
    wait_device(proxy, lambda: proxy.CurrentMeasurement == "calib1", "calib1 current")
    assert proxy.StopMeasurement() == "calib1"
    assert list_lines(f, other)[-2] == "__command__ stop"
    proxy.ScanDir = ""
    assert proxy.ScanDir == ""


def test_reingest_one_scan_and_a_whole_beamtime(beamtime_factory, scicat_server, start_device):
    f = beamtime_factory
    f.write_nexus_scan("scan_00001")
    f.append_list(None, "scan_00001")
    proxy = start_device()
    wait_for(lambda: proxy.IngestedCount == 1, timeout=TIMEOUT)
    wait_state(proxy, DevState.ON)
    before = len(scicat_server.requests_matching(path=r"/Datasets"))
    assert proxy.Reingest("scan_00001") == "scan_00001"
    assert list_lines(f)[-1].startswith("scan_00001:")
    # processed again; nothing changed, so it counts as unchanged, not as ingested
    wait_for(lambda: len(f.read_ingested()) == 2, timeout=TIMEOUT)
    assert proxy.IngestedCount == 1
    middle = len(scicat_server.requests_matching(path=r"/Datasets"))
    assert middle > before
    f.write_nexus_scan("scan_00001", title="a corrected title")  # a change to push
    progress = subscribe(proxy, "ReingestProgress")
    assert proxy.Reingest("") == BT
    wait_for(lambda: progress.seen(lambda v: v.startswith("1/")), timeout=TIMEOUT)
    wait_for(lambda: proxy.ReingestProgress == "", timeout=TIMEOUT)
    assert len(scicat_server.requests_matching(path=r"/Datasets")) > middle


def test_scicat_down_gives_alarm_and_last_error_then_on(
        beamtime_factory, scicat_server, start_device):
    f = beamtime_factory
    touch_list(f)
    proxy = start_device()
    wait_state(proxy, DevState.ON)
    errors = subscribe(proxy, "LastError")
    states = subscribe(proxy, "State")
    scicat_server.faults.refuse_connections(None)
    f.write_nexus_scan("scan_00001")
    f.append_list(None, "scan_00001")
    wait_state(proxy, DevState.ALARM)
    assert proxy.LastError and proxy.LastErrorTime
    assert proxy.SciCatReachable is False
    assert "SciCat" in proxy.status() or "fail" in proxy.status()
    assert errors.seen(bool) and states.seen(lambda v: v == DevState.ALARM)
    scicat_server.faults.clear()
    wait_for(lambda: proxy.IngestedCount == 1, timeout=TIMEOUT)
    wait_state(proxy, DevState.ON)
    assert states.seen(lambda v: v == DevState.ON)
    assert scicat_server.dataset(f"{BT}/scan_00001") is not None


def test_bad_config_file_gives_fault_and_the_server_stays_alive(beamtime_factory,
                                                                scicat_server, start_device):
    path = os.path.join(beamtime_factory.root, "broken.yaml")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("beamtime_dirs: [unclosed\n")
    proxy = start_device(config=path)
    assert proxy.state() == DevState.FAULT
    status = proxy.status()
    assert "Configuration error" in status and "broken.yaml" in status
    proxy.ping()
    with pytest.raises(tango.DevFailed) as failure:
        proxy.StartMeasurement("m1")
    assert failure.value.args[0].reason == "SciCatIngestor_NotConfigured"
    with pytest.raises(tango.DevFailed) as failure:
        proxy.Start()
    assert "broken.yaml" in failure.value.args[0].desc
    with pytest.raises(tango.DevFailed) as failure:
        proxy.ReloadConfiguration()
    assert failure.value.args[0].reason == "SciCatIngestor_ConfigError"
    assert proxy.state() == DevState.FAULT
    good = write_config(beamtime_factory, scicat_server.url)
    os.replace(good, path)
    proxy.ReloadConfiguration()
    wait_state(proxy, DevState.ON)
    assert proxy.SciCatUrl == scicat_server.url


def test_missing_config_and_bad_log_level_give_fault(beamtime_factory, start_device):
    proxy = start_device(config=os.path.join(beamtime_factory.root, "absent.yaml"))
    assert proxy.state() == DevState.FAULT
    assert "absent.yaml" in proxy.status() and "cannot read" in proxy.status()
    other = start_device(LogLevel="chatty")
    assert other.state() == DevState.FAULT
    assert "LogLevel" in other.status() and "chatty" in other.status()


def test_bad_command_arguments_raise_dev_failed(beamtime_factory, start_device):
    touch_list(beamtime_factory)
    proxy = start_device()
    wait_state(proxy, DevState.ON)
    cases = [
        (lambda: proxy.StartMeasurement("two words"), "invalid name"),
        (lambda: proxy.StartMeasurement(""), "invalid name"),
        (lambda: proxy.MakeMeasurement("../escape"), "MakeMeasurement"),
        (lambda: proxy.StartMeasurementInDir(["only-a-name"]), "[name, scandir]"),
        (lambda: proxy.StartMeasurementInDir(["m1", "/not/watched"]),
         "not a watched scan directory"),
        (lambda: proxy.UpdateMeasurement(), "no measurement is open"),
        (lambda: proxy.MakeMeasurement("m2"), "has no scan"),
    ]
    for call, text in cases:
        with pytest.raises(tango.DevFailed) as failure:
            call()
        error = failure.value.args[0]
        assert error.reason == "SciCatIngestor_BadArgument", error
        assert text in error.desc, error.desc
    with pytest.raises(tango.DevFailed) as failure:
        proxy.write_attribute("ScanDir", "relative/dir")
    assert "absolute" in str(failure.value)
    assert list_lines(beamtime_factory) == []
    assert proxy.state() == DevState.ON


def test_stop_and_start_switch_watching(beamtime_factory, scicat_server, start_device):
    f = beamtime_factory
    touch_list(f)
    proxy = start_device(AutoStart=False)
    assert proxy.state() == DevState.OFF
    assert "Start" in proxy.status()
    proxy.Start()
    wait_state(proxy, DevState.ON)
    states = subscribe(proxy, "State")
    proxy.Stop()
    assert proxy.state() == DevState.OFF
    wait_for(lambda: states.seen(lambda v: v == DevState.OFF), timeout=TIMEOUT)
    f.write_nexus_scan("scan_00001")
    f.append_list(None, "scan_00001")
    proxy.Start()
    wait_for(lambda: proxy.IngestedCount == 1, timeout=TIMEOUT)
    assert scicat_server.dataset(f"{BT}/scan_00001") is not None
    wait_state(proxy, DevState.ON)


def test_two_clients_open_measurements_in_two_directories_at_once(
        beamtime_factory, device_server):
    """Each client names its directory (``...In`` commands); ScanDir changes do not matter."""
    f = beamtime_factory
    dirs = {"a": f.make_scandir("dir_a"), "b": f.make_scandir("dir_b")}
    for directory in dirs.values():
        touch_list(f, directory)
    server = device_server()
    proxy = server.proxy
    wait_device(proxy, lambda: set(dirs.values()) <= set(proxy.WatchedScanDirs or ()),
                "both directories watched")
    rounds = 15
    barrier = threading.Barrier(3)
    errors: List[BaseException] = []

    def client(tag: str) -> None:
        own = tango.DeviceProxy(server.address)  # a client of its own, as a Door or a panel
        directory = dirs[tag]
        try:
            barrier.wait(TIMEOUT)
            for number in range(rounds):
                assert own.StartMeasurementIn([directory, f"meas_{tag}{number}"]) == directory
                assert own.CurrentMeasurementIn([directory]) == f"meas_{tag}{number}"
                if number % 3 == 2:
                    assert own.UpdateMeasurementIn([directory]) == f"meas_{tag}{number}"
            assert own.StopMeasurementIn([directory]) == f"meas_{tag}{rounds - 1}"
        except BaseException as exc:  # reported in the test thread
            errors.append(exc)

    def typist() -> None:  # somebody moving ScanDir by hand all the time
        own = tango.DeviceProxy(server.address)
        barrier.wait(TIMEOUT)
        for number in range(4 * rounds):
            own.ScanDir = dirs["ab"[number % 2]]

    threads = [threading.Thread(target=client, args=(tag,)) for tag in "ab"]
    threads.append(threading.Thread(target=typist))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(4 * TIMEOUT)
    assert not errors, errors
    for tag, directory in dirs.items():
        other = "b" if tag == "a" else "a"
        lines = list_lines(f, directory)
        assert not any(f"meas_{other}" in line for line in lines), lines
        starts = [line.split()[-1] for line in lines if line.startswith("__command__ start")]
        expected: List[str] = []
        for number in range(rounds):  # StartMeasurementIn, and UpdateMeasurementIn reopens
            expected += [f"meas_{tag}{number}"] * (2 if number % 3 == 2 else 1)
        assert starts == expected
        assert lines[-2:] == ["__command__ stop", lines[-1]]
        assert lines[-1].startswith(f"meas_{tag}{rounds - 1}:")
    assert not os.path.exists(f.list_path())  # nothing went to the default directory


def test_directory_commands_check_their_arguments(beamtime_factory, start_device):
    touch_list(beamtime_factory)
    proxy = start_device()
    wait_state(proxy, DevState.ON)
    scandir = beamtime_factory.scandir
    cases = [
        (lambda: proxy.StartMeasurementIn([scandir]), "[scandir, name]"),
        (lambda: proxy.StartMeasurementIn(["raw", "m1"]), "absolute path"),
        (lambda: proxy.StartMeasurementIn(["", "m1"]), "absolute path"),
        (lambda: proxy.StopMeasurementIn([scandir, "extra"]), "[scandir]"),
        (lambda: proxy.UpdateMeasurementIn([scandir]), "no measurement is open"),
        (lambda: proxy.MakeMeasurementIn([scandir, "m2"]), "has no scan"),
        (lambda: proxy.ReingestIn([scandir, "a:b"]), "':'"),
        (lambda: proxy.CurrentMeasurementIn(["/not/watched"]), "not a watched scan directory"),
    ]
    for call, text in cases:
        with pytest.raises(tango.DevFailed) as failure:
            call()
        error = failure.value.args[0]
        assert error.reason == "SciCatIngestor_BadArgument", error
        assert text in error.desc, error.desc
    assert proxy.CurrentMeasurementIn([scandir]) == ""
    assert proxy.ReingestIn([scandir, "scan_00001"]) == "scan_00001"
    assert list_lines(beamtime_factory)[-1].startswith("scan_00001:")
    assert proxy.ScanDir == ""
