"""The Taurus panel ``IngestorPanel`` against a real ``SciCatIngestor`` device process.

The device server runs as a subprocess with a Tango file database (tests/tango_helpers.py)
and the dev SciCat server. The panel runs with the real Qt ``offscreen`` platform in a
*separate* Python process: this file run as a script (``python test_panel.py panel ...``),
so a Qt crash cannot take pytest down. That child drives the panel like a user (types,
clicks), waits until the Taurus widgets show the expected values, saves a screenshot and
prints what it saw as one JSON line; the tests assert on that and on the device.

Set ``SCINGESTOR_SCREENSHOT=/path/panel.png`` to also write the screenshot there
(docs/panel.png is made that way).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, Sequence

import pytest

logger = logging.getLogger(__name__)

BT = "99001234"
SCAN = "scan_00001"
SCAN2 = "scan_00002"
MEASUREMENT = "ptycho1"
CHILD_TIMEOUT = 60.0  # one wait inside the child
RUN_TIMEOUT = 240.0  # the whole child process, a safety limit only
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


# ------------------------------------------------------------------------------------------------
# The child process: the panel under the Qt offscreen platform.
# ------------------------------------------------------------------------------------------------
class PanelDriver:
    """Builds an ``IngestorPanel`` for a device and drives it (child process only)."""

    def __init__(self, device: str) -> None:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before Qt is imported
        from taurus.external.qt import Qt
        from taurus.qt.qtgui.application import TaurusApplication

        from scingestor_gui.panel import IngestorPanel

        self.Qt = Qt
        self.app = TaurusApplication([sys.argv[0]], cmd_line_parser=None,
                                     app_name="scingestor-panel-test")
        self.panel = IngestorPanel()
        self.panel.setModel(device)
        self.panel.resize(680, self.panel.sizeHint().height())
        self.panel.show()
        self.finished: List[Any] = []
        self.panel.commandFinished.connect(
            lambda command, ok, text: self.finished.append((command, ok, text)))

    def text(self, attribute: str) -> str:
        """What the panel shows for ``attribute``."""
        return self.panel.valueWidget(attribute).text()

    def wait(self, what: str, predicate: Callable[[], Any]) -> Any:
        """Let Qt work until ``predicate`` is true; fail after :data:`CHILD_TIMEOUT`."""
        deadline = time.monotonic() + CHILD_TIMEOUT
        while True:
            self.app.processEvents(self.Qt.QEventLoop.AllEvents, 50)
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                shown = {name: self.text(name) for name in self.panel.attributeNames()}
                raise AssertionError(f"{what}: not shown within {CHILD_TIMEOUT} s; the panel "
                                     f"shows {shown}, message {self.panel.message()!r}")
            time.sleep(0.02)

    def wait_text(self, attribute: str, predicate: Callable[[str], bool], what: str) -> str:
        self.wait(f"{attribute} {what}", lambda: predicate(self.text(attribute)))
        return self.text(attribute)

    def click(self, button: Any) -> tuple:
        """Click ``button`` (press and release); return the (command, ok, message) it produced."""
        count = len(self.finished)
        button.click()
        self.wait(f"result of {button.text()!r}", lambda: len(self.finished) > count)
        return self.finished[-1]

    def type_into(self, edit: Any, text: str) -> None:
        edit.setFocus()
        edit.selectAll()
        edit.insert(text)

    def screenshot(self, paths: Sequence[str]) -> None:
        self.app.processEvents()
        image = self.panel.grab()
        for path in paths:
            directory = os.path.dirname(os.path.abspath(path))
            os.makedirs(directory, exist_ok=True)
            if not image.save(path, "PNG"):
                raise AssertionError(f"cannot save the screenshot {path}")


def first_word(text: str) -> str:
    """'1 datasets' -> '1' (Taurus adds the unit)."""
    return text.split()[0] if text.split() else ""


def child_panel(args: argparse.Namespace) -> Dict[str, Any]:
    """The user scenario; returns what the panel showed."""
    driver = PanelDriver(args.device)
    panel = driver.panel
    seen: Dict[str, Any] = {"title": panel.title()}
    seen["state"] = driver.wait_text("State", lambda text: text == "ON", "ON")
    seen["status"] = driver.wait_text("Status", bool, "not empty")
    seen["ingested_before"] = driver.wait_text("IngestedCount", lambda t: first_word(t) == "0",
                                               "0")
    seen["queue_before"] = driver.wait_text("QueueLength", lambda t: first_word(t) == "0", "0")
    seen["scandir"] = driver.wait_text("ScanDir", bool, "not empty")
    seen["last_scan_before"] = driver.text("LastIngestedScan")
    with open(args.list_file, "a", encoding="utf-8") as handle:  # as the Sardana macros do
        handle.write("\n" + args.scan)
    seen["ingested_after"] = driver.wait_text("IngestedCount",
                                              lambda t: first_word(t) == "1", "1")
    seen["last_scan_after"] = driver.wait_text("LastIngestedScan",
                                               lambda t: t == args.scan, args.scan)
    seen["reachable"] = driver.wait_text("SciCatReachable", lambda t: t == "True", "True")
    seen["led_on"] = bool(panel.ledWidget().ledStatus)
    seen["failed"] = driver.text("FailedCount")
    seen["last_error"] = driver.text("LastError")

    driver.type_into(panel.measurementEdit, args.measurement)
    seen["start"] = driver.click(panel.startButton)
    seen["scandir_used"] = panel.scanDirEdit.text()
    seen["current"] = driver.wait_text("CurrentMeasurement",
                                       lambda t: t == args.measurement, args.measurement)
    with open(args.list_file, "a", encoding="utf-8") as handle:  # a scan of the measurement
        handle.write("\n" + args.scan2)
    seen["ingested_scan2"] = driver.wait_text("IngestedCount",
                                              lambda t: first_word(t) == "2", "2")
    driver.wait_text("QueueLength", lambda t: first_word(t) == "0", "0")
    driver.wait_text("State", lambda t: t == "ON", "ON")
    driver.screenshot(args.screenshot)

    driver.type_into(panel.measurementEdit, "two words")
    seen["bad_start"] = driver.click(panel.startButton)
    seen["current_after_bad"] = driver.text("CurrentMeasurement")

    seen["stop"] = driver.click(panel.stopButton)
    seen["current_after_stop"] = driver.wait_text("CurrentMeasurement", lambda t: t == "",
                                                  "empty")
    seen["ingested_measurement"] = driver.wait_text(
        "IngestedCount", lambda t: first_word(t) == "3", "3")
    seen["last_scan_measurement"] = driver.text("LastIngestedScan")

    driver.type_into(panel.scanEdit, args.scan)
    seen["reingest"] = driver.click(panel.reingestButton)
    # the scan is unchanged: it is processed again (and counted unchanged, not ingested)
    seen["ingested_reingest"] = driver.wait_text(
        "LastIngestedScan", lambda t: t == args.scan, args.scan)
    seen["message"] = panel.message()
    panel.setModel("")
    return seen


def child_start(args: argparse.Namespace) -> Dict[str, Any]:
    """A user types a scan directory and a name and clicks *Start measurement*."""
    driver = PanelDriver(args.device)
    panel = driver.panel
    driver.type_into(panel.scanDirEdit, args.scandir)
    driver.type_into(panel.measurementEdit, args.measurement)
    seen: Dict[str, Any] = {"start": driver.click(panel.startButton)}
    panel.setModel("")
    return seen


TAURUSGUI_CONFIG = """\
from taurus.qt.qtgui.taurusgui.utils import PanelDescription

GUI_NAME = "SciCatIngestorTest"
ORGANIZATION = "scingestor"
ingestor = PanelDescription(
    "SciCat ingestor",
    classname="scingestor_gui.panel:IngestorPanel",
    model={model!r},
)
"""


def child_taurusgui(args: argparse.Namespace) -> Dict[str, Any]:
    """The panel as described in a TaurusGUI configuration file (docs/panel.md)."""
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from taurus.external.qt import Qt
    from taurus.qt.qtgui.application import TaurusApplication
    from taurus.qt.qtgui.taurusgui import TaurusGui

    from scingestor_gui.panel import IngestorPanel

    config = os.path.abspath("ingestor_gui_config.py")
    with open(config, "w", encoding="utf-8") as handle:
        handle.write(TAURUSGUI_CONFIG.format(model=args.device))
    app = TaurusApplication([sys.argv[0]], cmd_line_parser=None, app_name="taurusgui")
    gui = TaurusGui(None, confname=config, settingsname=os.path.abspath("gui.ini"))
    gui.show()
    panel = gui.getPanel("SciCat ingestor").widget()
    seen: Dict[str, Any] = {"class": type(panel).__name__,
                            "is_panel": isinstance(panel, IngestorPanel),
                            "model": panel.getModel(), "title": panel.title()}
    deadline = time.monotonic() + CHILD_TIMEOUT
    while panel.valueWidget("State").text() != "ON" and time.monotonic() < deadline:
        app.processEvents(Qt.QEventLoop.AllEvents, 50)
        time.sleep(0.02)
    seen["state"] = panel.valueWidget("State").text()
    seen["ingested"] = panel.valueWidget("IngestedCount").text()
    panel.measurementEdit.setText(args.measurement)
    panel.startButton.click()
    seen["message"] = panel.message()
    gui.hide()  # close() would ask whether to save the settings (a modal dialog)
    return seen


def child_main(argv: Sequence[str]) -> int:
    """Entry point of the child process; prints ``RESULT <json>`` on success."""
    parser = argparse.ArgumentParser(prog="test_panel.py")
    parser.add_argument("scenario", choices=["panel", "taurusgui", "start"])
    parser.add_argument("--scandir")
    parser.add_argument("--device", required=True)
    parser.add_argument("--list-file")
    parser.add_argument("--scan")
    parser.add_argument("--scan2")
    parser.add_argument("--measurement", required=True)
    parser.add_argument("--screenshot", action="append", default=[])
    args = parser.parse_args(argv)
    scenarios = {"panel": child_panel, "taurusgui": child_taurusgui, "start": child_start}
    seen = scenarios[args.scenario](args)
    print("RESULT " + json.dumps(seen), flush=True)
    return 0


# ------------------------------------------------------------------------------------------------
# The tests (pytest process): device server, dev SciCat server, beamtime.
# ------------------------------------------------------------------------------------------------
def _have_qt() -> bool:
    if importlib.util.find_spec("taurus") is None:
        return False
    return any(importlib.util.find_spec(name) is not None
               for name in ("PyQt5", "PyQt6", "PySide2", "PySide6"))


needs_qt = pytest.mark.part("taurus", _have_qt(),
                            "taurus and a Qt binding (PyQt5, PyQt6, PySide2, PySide6) are needed")


def run_child(workdir: str, *args: str) -> Dict[str, Any]:
    """Run this file as the panel child; return its RESULT, or fail with its output."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen",
               PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])),
               XDG_RUNTIME_DIR=workdir, XDG_CONFIG_HOME=workdir)
    done = subprocess.run([sys.executable, os.path.abspath(__file__), *args], cwd=workdir,
                          env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    output = f"exit status {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert done.returncode == 0, output
    results = [line[len("RESULT "):] for line in done.stdout.splitlines()
               if line.startswith("RESULT ")]
    assert results, output
    return json.loads(results[-1])


def test_console_script_help() -> None:
    done = subprocess.run([sys.executable, "-m", "scingestor_gui", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert done.returncode == 0, done.stderr
    assert "usage: scingestor-panel" in done.stdout and "device" in done.stdout


def test_attribute_model_names() -> None:
    from parts import import_part

    import_part("taurus", "taurus")
    from scingestor_gui.panel import attribute_model

    assert attribute_model("p00/scicatingestor/1", "State") == "p00/scicatingestor/1/State"
    assert (attribute_model("tango://h:123/a/b/c#dbase=no", "IngestedCount")
            == "tango-nodb://h:123/a/b/c/IngestedCount")
    assert (attribute_model("tango-nodb://h:123/a/b/c", "QueueLength")
            == "tango-nodb://h:123/a/b/c/QueueLength")
    assert (attribute_model("tango://h:10000/a/b/c/", "Status")
            == "tango://h:10000/a/b/c/Status")


@needs_qt
def test_panel_shows_the_device_values_and_runs_its_commands(tmp_path, beamtime_factory,
                                                             scicat_server) -> None:
    from parts import import_part

    tango = import_part("tango", "tango")
    from tango_helpers import ingestor_servers, wait_device

    from scingestor.testing.setup import write_config

    f = beamtime_factory
    f.write_nexus_scan(SCAN)
    f.write_nexus_scan(SCAN2)
    with open(f.list_path(), "a", encoding="utf-8"):
        pass
    config = write_config(f, scicat_server.url)
    shots = [str(tmp_path / "panel.png")]
    if os.environ.get("SCINGESTOR_SCREENSHOT"):
        shots.append(os.path.abspath(os.environ["SCINGESTOR_SCREENSHOT"]))
    with ingestor_servers(str(tmp_path)) as start:
        server = start(ConfigFile=config)
        proxy = server.proxy
        proxy.ScanDir = f.scandir
        wait_device(proxy, lambda: proxy.state() == tango.DevState.ON, "state ON")
        seen = run_child(str(tmp_path), "panel", "--device", server.address,
                         "--list-file", f.list_path(), "--scan", SCAN, "--scan2", SCAN2,
                         "--measurement", MEASUREMENT,
                         *[item for shot in shots for item in ("--screenshot", shot)])
        # the values the device has now are those the panel followed
        assert proxy.IngestedCount == 3 and proxy.CurrentMeasurement == ""
        assert proxy.LastIngestedScan == SCAN

    assert server.device in seen["title"]
    assert seen["state"] == "ON"
    assert seen["status"]
    assert seen["ingested_before"].split()[0] == "0"
    assert seen["last_scan_before"] == ""
    assert seen["scandir"] == f.scandir
    assert seen["ingested_after"].split()[0] == "1"
    assert seen["last_scan_after"] == SCAN
    assert seen["reachable"] == "True" and seen["led_on"] is True
    assert seen["failed"].split()[0] == "0" and seen["last_error"] == ""

    command, ok, text = seen["start"]
    assert (command, ok) == ("StartMeasurementIn", True)
    assert MEASUREMENT in text and f.scandir in text
    assert seen["scandir_used"] == f.scandir  # the device's ScanDir, filled in once
    assert seen["current"] == MEASUREMENT
    assert seen["ingested_scan2"].split()[0] == "2"

    command, ok, text = seen["bad_start"]
    assert (command, ok) == ("StartMeasurementIn", False)
    assert "StartMeasurementIn failed" in text and "invalid name" in text
    assert "Traceback" not in text
    assert seen["current_after_bad"] == MEASUREMENT

    command, ok, text = seen["stop"]
    assert (command, ok) == ("StopMeasurementIn", True) and MEASUREMENT in text
    assert seen["current_after_stop"] == ""
    assert seen["ingested_measurement"].split()[0] == "3"
    assert seen["last_scan_measurement"] == MEASUREMENT

    command, ok, text = seen["reingest"]
    assert (command, ok) == ("ReingestIn", True) and SCAN in text
    assert seen["ingested_reingest"] == SCAN
    assert SCAN in seen["message"]

    assert scicat_server.dataset(f"{BT}/{SCAN}") is not None
    assert scicat_server.dataset(f"{BT}/{SCAN2}") is not None
    assert scicat_server.dataset(f"{BT}/{MEASUREMENT}") is not None
    for shot in shots:
        with open(shot, "rb") as handle:
            assert handle.read(8) == b"\x89PNG\r\n\x1a\n", shot
        assert os.path.getsize(shot) > 5000, shot


@needs_qt
def test_panel_in_a_taurusgui_from_a_config_file(tmp_path, beamtime_factory,
                                                  scicat_server) -> None:
    from parts import import_part

    tango = import_part("tango", "tango")
    from tango_helpers import ingestor_servers, wait_device

    from scingestor.testing.setup import write_config

    with open(beamtime_factory.list_path(), "a", encoding="utf-8"):
        pass
    config = write_config(beamtime_factory, scicat_server.url)
    with ingestor_servers(str(tmp_path)) as start:
        server = start(ConfigFile=config)
        proxy = server.proxy
        proxy.ScanDir = beamtime_factory.scandir
        wait_device(proxy, lambda: proxy.state() == tango.DevState.ON, "state ON")
        seen = run_child(str(tmp_path), "taurusgui", "--device", server.address,
                         "--measurement", MEASUREMENT)
        wait_device(proxy, lambda: proxy.CurrentMeasurement == MEASUREMENT,
                    "measurement started from the TaurusGUI panel")
    assert seen["is_panel"] is True, seen
    assert seen["model"] == server.address and server.device in seen["title"]
    assert seen["state"] == "ON" and seen["ingested"].split()[0] == "0"
    assert MEASUREMENT in seen["message"] and "failed" not in seen["message"]


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
