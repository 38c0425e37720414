"""The operator's views against real devices: the panel's history and ``scingestor-gui``.

* The panel (``IngestorPanel`` with its ``HistoryView``) follows a ``SciCatIngestor``
  device (its own server process, file database) through a burst of scans in which
  the dev SciCat server rejects one (HTTP 400): the recent ingestions (newest first,
  by result, the server's message as tool tip), the failed scan, the trend and the
  "open in SciCat" link are read back; *Retry selected* runs ``RetryFailedIn`` and the
  scan arrives in SciCat. The picture is docs/panel.png.
* ``scingestor-gui`` finds two ingestors in a real Tango database (PyTango's database
  server), shows a row each, opens a panel, saves a perspective, and a second start
  restores the opened panel. The picture is docs/overview.png.

The Qt side runs in a child process under the ``offscreen`` platform
(tests/gui_child.py); the pictures are checked or updated with tests/pictures.py.
"""

from __future__ import annotations

import os
import sys

import pytest
from parts import import_part
from pictures import check_picture, run_gui_child

tango = import_part("tango", "tango")
import_part("taurus", "taurus")
import_part("PyQt5", "taurus")

from scingestor.testing import BeamtimeFactory  # noqa: E402
from scingestor.testing.setup import wait_for, write_config  # noqa: E402
from scingestor.testing.tango_env import DeviceServer, TangoDatabase  # noqa: E402

BT = "99001234"
SCANS = ["scan_00001", "scan_00002", "scan_00003", "scan_00004"]
WEB = "https://scicat.example.org"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_panel_history_failed_scan_retry_and_picture(tmp_path, beamtime_factory,
                                                     scicat_server) -> None:
    from tango_helpers import ingestor_servers, wait_device

    f = beamtime_factory
    for scan in SCANS:
        f.write_nexus_scan(scan)
    with open(f.list_path(), "a", encoding="utf-8"):
        pass
    # the automatic retry comes late (10 min): the operator retries with the button
    config = write_config(f, scicat_server.url, scicat_web_url=WEB,
                          retry_backoff_initial=600, retry_backoff_max=600)
    made = str(tmp_path / "panel.png")
    with ingestor_servers(str(tmp_path / "servers")) as start:
        server = start(ConfigFile=config)
        proxy = server.proxy
        proxy.ScanDir = f.scandir
        wait_device(proxy, lambda: proxy.state() == tango.DevState.ON, "state ON")
        # the first dataset the burst posts is rejected, as SciCat rejects a bad document
        scicat_server.faults.fail_next(1, status=400, method="POST", path="Datasets$",
                                       body={"statusCode": 400,
                                             "message": "proposalId must be a string"})
        seen = run_gui_child(str(tmp_path), "history", "--device", server.address,
                             "--list-file", f.list_path(), "--picture", made,
                             *[item for scan in SCANS for item in ("--scan", scan)])
        assert proxy.FailedScans in ("", "[]")

    recent = seen["recent"]
    assert [row[1] for row in recent[:len(SCANS)]] == list(reversed(SCANS)), recent
    results = {row[1]: row[2] for row in recent}
    rejected = [scan for scan, result in results.items() if result == "FAILED"]
    assert len(rejected) == 1, results
    REJECTED = rejected[0]  # noqa: N806 - the scan whose POST was the first
    assert all(results[scan] == "created" for scan in SCANS if scan != REJECTED), results
    colours = dict(zip([row[1] for row in recent], seen["recent_colours"]))
    assert colours[REJECTED] == "#f8c0c0"
    assert {colours[scan] for scan in SCANS if scan != REJECTED} == {"#c8f0c8"}
    assert "proposalId must be a string" in seen["recent_failed_tip"]
    assert [row[0] for row in seen["failed"]] == [REJECTED]
    assert "proposalId must be a string" in seen["failed"][0][1]
    assert "proposalId must be a string" in seen["failed_tip"]
    assert seen["web_url"] == WEB and seen["open_visible"] is True
    assert len(seen["opened"]) == 1 and seen["opened"][0].startswith(f"{WEB}/datasets/")
    assert seen["queue_samples"] >= 1

    command, ok, text = seen["retry"]
    assert (command, ok) == ("RetryFailedIn", True) and REJECTED in text, seen["retry"]
    assert seen["recent_after"][0][1:3] == [REJECTED, "created"], seen["recent_after"]
    assert seen["retry_all_enabled"] is False
    assert scicat_server.dataset(f"{BT}/{REJECTED}") is not None
    check_picture(made, "panel.png")


def _register(database: TangoDatabase, instance: str, device: str, config: str) -> DeviceServer:
    database.register_server(f"SciCatIngestor/{instance}", "SciCatIngestor", device,
                             {"ConfigFile": config}, with_dserver=True)
    return DeviceServer(database, [sys.executable, "-m", "tango_ds.SciCatIngestor", instance,
                                   "-ORBendPoint", "giop:tcp:127.0.0.1:"], device,
                        f"{instance}.out").start(90)


def test_overview_finds_the_ingestors_opens_a_panel_and_keeps_perspectives(
        tmp_path, scicat_server) -> None:
    path = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))
    database = TangoDatabase(str(tmp_path / "tango"),
                             extra_env={"ORBscanGranularity": "1", "PYTHONPATH": path})
    devices = {"p01/scicatingestor/1": "p01", "p02/scicatingestor/1": "p02"}
    with database:
        servers = []
        for number, (device, name) in enumerate(devices.items()):
            # a beamtime each: the same scan of one beamtime would be "unchanged" the
            # second time (nothing to send), and not counted as ingested
            factory = BeamtimeFactory(str(tmp_path / name), beamtime_id=f"9900123{number}")
            factory.write_nexus_scan(SCANS[0])
            with open(factory.list_path(), "w", encoding="utf-8") as handle:
                handle.write(SCANS[0] + "\n")
            servers.append(_register(database, name, device,
                                     write_config(factory, scicat_server.url)))
        for server in servers:
            wait_for(lambda server=server: server.proxy.IngestedCount == 1, timeout=60)
        made = str(tmp_path / "overview.png")
        seen = run_gui_child(str(tmp_path), "overview", "--settings",
                             str(tmp_path / "gui.ini"), "--picture", made,
                             env={"TANGO_HOST": database.host})
        again = run_gui_child(str(tmp_path), "restore", "--settings", str(tmp_path / "gui.ini"),
                              env={"TANGO_HOST": database.host})

    assert seen["found"] == sorted(devices)
    rows = seen["rows"]
    assert [row["device"] for row in rows] == sorted(devices)
    for row in rows:
        assert row["state"] == "ON" and row["led"] is True, row
        assert row["queue"].split()[0] == "0" and row["failed"].split()[0] == "0", row
        assert row["last"][:2] == "20", row  # a date, YYYY-MM-DD HH:MM:SS
    assert seen["ingestor_panels"] == ["p01/scicatingestor/1"]
    assert seen["panel_model"] == "p01/scicatingestor/1"
    assert seen["panel_ingested"].split()[0] == "1"
    assert "hall" in seen["perspectives"]
    # a new start restores the opened panel (TaurusGUI's custom, permanent panels)
    assert again["overview_panel"] is True and "hall" in again["perspectives"]
    assert again["restored_panels"] == ["p01/scicatingestor/1"]
    assert again["restored_models"] == ["p01/scicatingestor/1"]
    check_picture(made, "overview.png")


@pytest.mark.parametrize("device, expected", [
    ("p00/scicatingestor/1", "p00/scicatingestor/1"),
    ("tango://h:10000/p00/scicatingestor/1", "p00/scicatingestor/1"),
    ("tango://127.0.0.1:123/test/scicatingestor/s1#dbase=no", "test/scicatingestor/s1"),
])
def test_panel_names(device, expected) -> None:
    from scingestor_gui.names import panel_name

    assert panel_name(device) == expected


def test_console_script_help() -> None:
    import subprocess

    done = subprocess.run([sys.executable, "-m", "scingestor_gui.app", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "usage: scingestor-gui" in done.stdout and "--tango-host" in done.stdout
