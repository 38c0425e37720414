"""What happened to my scans, on a real ``SciCatIngestor`` device in a real Tango database.

A burst of scans with one rejected by the dev server (HTTP 400): ``RecentIngestions``,
``FailedScans``, the scalars, ``RetryFailed`` (the scan arrives afterwards) and the
change events a subscriber receives; and what Jive and Taurus show (descriptions,
units, formats, display levels).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Iterator

import pytest
from parts import import_part

tango = import_part("tango", "tango")

from tango_helpers import ROOT, TIMEOUT, EventLog, wait_device  # noqa: E402

from scingestor.testing import BeamtimeFactory, DevServerHandle, start_dev_server  # noqa: E402
from scingestor.testing.setup import wait_for, write_config  # noqa: E402
from scingestor.testing.tango_env import DeviceServer, TangoDatabase  # noqa: E402

BT = "99001234"
WEB = "https://scicat.example.org"
REJECTED = {"message": ["contactEmail must be an email"]}
DevState = tango.DevState


@pytest.fixture(scope="module")
def scicat() -> Iterator[DevServerHandle]:
    handle = start_dev_server()
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, scicat: DevServerHandle) -> Iterator[Any]:
    """A Tango database, a beamtime and a registered, running ``SciCatIngestor``."""
    workdir = str(tmp_path_factory.mktemp("tangodb"))
    factory = BeamtimeFactory(str(tmp_path_factory.mktemp("bt")))
    with open(factory.list_path(), "a", encoding="utf-8"):
        pass
    config = write_config(factory, scicat.url, scicat_web_url=WEB + "/",
                          retry_backoff_initial=600, retry_backoff_max=600)
    path = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))
    host = TangoDatabase(workdir, extra_env={"ORBscanGranularity": "1", "PYTHONPATH": path})
    host.start(TIMEOUT)
    device = "p00/scicatingestor/history"
    try:
        host.register_server("SciCatIngestor/history", "SciCatIngestor", device,
                             {"ConfigFile": config, "AutoStart": True})
        server = DeviceServer(host, [sys.executable, "-m", "tango_ds.SciCatIngestor",
                                     "history"], device, "SciCatIngestor.out").start(TIMEOUT)
        yield factory, server
        server.terminate()
    finally:
        host.stop()


def subscribe(proxy: Any, name: str) -> EventLog:
    log = EventLog()
    proxy.subscribe_event(name, tango.EventType.CHANGE_EVENT, log)
    return log


def test_a_burst_with_a_rejected_scan_history_failed_scans_retry_and_events(lab, scicat):
    factory, server = lab
    proxy = server.proxy
    wait_device(proxy, lambda: proxy.state() == DevState.ON, "state ON")
    assert json.loads(proxy.RecentIngestions) == [] and json.loads(proxy.FailedScans) == []
    assert proxy.SciCatWebUrl == WEB and proxy.LastIngestionTime == 0.0
    recent = subscribe(proxy, "RecentIngestions")
    failed = subscribe(proxy, "FailedScans")
    rate = subscribe(proxy, "ScansPerMinute")
    last = subscribe(proxy, "LastIngestionTime")
    names = [f"scan_{number:05d}" for number in range(1, 6)]
    for name in names:
        factory.write_nexus_scan(name)
    scicat.faults.fail_next(1, status=400, body=REJECTED, method="POST", path=r"datasets$")
    factory.append_list(None, *names)
    wait_device(proxy, lambda: len(json.loads(proxy.RecentIngestions)) == 5, "5 outcomes")
    items = json.loads(proxy.RecentIngestions)
    assert [item["scan"] for item in items] == names[::-1]
    assert [item["result"] for item in items] == ["created"] * 4 + ["failed"]
    assert "contactEmail must be an email" in items[-1]["message"]
    for item in items[:4]:
        assert item["pid"] == f"{BT}/{item['scan']}" and item["message"] == ""
        assert item["url"] == f"{WEB}/datasets/{BT}%2F{item['scan']}"
        assert item["datablocks"] == 1 and item["scandir"] == factory.scandir
    (scan,) = json.loads(proxy.FailedScans)
    assert scan["scan"] == "scan_00001" and "contactEmail" in scan["message"]
    assert scan["list_path"] == factory.list_path() and scan["retry_at"] > items[-1]["time"]
    wait_device(proxy, lambda: proxy.state() == DevState.ALARM, "ALARM: a retry waits")
    assert proxy.PendingRetries == 1
    assert proxy.ScansPerMinute == pytest.approx(4 / 5)
    assert proxy.LastIngestionTime == pytest.approx(items[0]["time"])
    assert scicat.dataset(f"{BT}/scan_00001") is None
    with pytest.raises(tango.DevFailed) as failure:
        proxy.RetryFailed("scan_00002")  # ingested: not a failed scan
    assert failure.value.args[0].reason == "SciCatIngestor_BadArgument"
    with pytest.raises(tango.DevFailed) as failure:
        proxy.RetryFailedIn(["scan_00001"])
    assert "[scandir, scan]" in failure.value.args[0].desc
    assert proxy.RetryFailedIn([factory.scandir, "scan_00001"]) == 1
    wait_for(lambda: scicat.dataset(f"{BT}/scan_00001") is not None, timeout=TIMEOUT)
    wait_device(proxy, lambda: json.loads(proxy.FailedScans) == [], "no failed scan")
    wait_device(proxy, lambda: proxy.state() == DevState.ON, "state ON again")
    newest = json.loads(proxy.RecentIngestions)[0]
    assert (newest["scan"], newest["result"]) == ("scan_00001", "created")
    assert proxy.RetryAllFailed() == 0
    # the subscriber saw it all happen
    wait_for(lambda: recent.seen(lambda v: len(json.loads(v)) == 6), timeout=TIMEOUT)
    assert failed.seen(lambda v: len(json.loads(v)) == 1)
    wait_for(lambda: failed.seen(lambda v: json.loads(v) == []) and len(failed.values) >= 3,
             timeout=TIMEOUT)
    assert rate.seen(lambda v: v > 0) and last.seen(lambda v: v > 0)


def test_jive_and_taurus_read_descriptions_units_formats_and_levels(lab):
    _, server = lab
    proxy = server.proxy
    operator, expert = tango.DispLevel.OPERATOR, tango.DispLevel.EXPERT
    for name in proxy.get_attribute_list():
        if name in ("State", "Status"):
            continue
        config = proxy.get_attribute_config(name)
        assert config.label != name, name
        assert config.description and "No description" not in config.description, name
        assert config.format and "Not specified" not in config.format, name
    expected = {
        "RecentIngestions": ("", "%s", operator), "FailedScans": ("", "%s", operator),
        "ScansPerMinute": ("1/min", "%.1f", operator),
        "LastIngestionTime": ("s", "%.0f", operator), "SciCatWebUrl": ("", "%s", operator),
        "QueueLength": ("scans", "%d", operator), "StatusReport": ("", "%s", expert),
        "WatchMode": ("", "%s", expert), "WatchedBeamtimes": ("", "%s", expert),
    }
    for name, (unit, fmt, level) in expected.items():
        config = proxy.get_attribute_config(name)
        assert (config.unit, config.format, config.disp_level) == (unit, fmt, level), name
    for name in ("RetryFailed", "RetryFailedIn", "RetryAllFailed"):
        info = proxy.command_query(name)
        assert info.out_type == tango.CmdArgType.DevLong, name
    # what Jive's property wizard shows: name, description, default of each property
    admin = tango.DeviceProxy(proxy.adm_name())
    wizard = list(admin.QueryWizardDevProperty("SciCatIngestor"))
    described = dict(zip(wizard[0::3], wizard[1::3]))
    assert set(described) >= {"ConfigFile", "AutoStart", "LogLevel", "LogFile"}
    for name, text in described.items():
        assert len(text) > 40 and ("default" in text.lower() or "required" in text), name
