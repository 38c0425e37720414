"""The Qt side of the history, overview and picture tests, run as a child process.

``python tests/gui_child.py <scenario> ...`` runs one scenario under the Qt
``offscreen`` platform and prints ``RESULT <json>``; a Qt crash cannot take pytest down
(the same scheme as tests/test_panel.py). Scenarios:

* ``history``: an ``IngestorPanel`` follows a device through a burst in which one scan
  is rejected by SciCat; reads back the tables, opens a dataset "in SciCat", saves the
  picture, retries the failed scan with the button and waits until it arrived;
* ``overview``: ``scingestor-gui``'s ``IngestorGui`` on the devices it finds in the
  Tango database (``TANGO_HOST``); reads back the rows, opens a panel, saves a
  perspective, and checks a second GUI with the same settings restores the panel;
* ``text``: renders a text session (a spock transcript) as a terminal picture.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import sys
import time
from typing import Any, Callable, Dict, List, Sequence

TIMEOUT = 90.0
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


class Qt_:
    """The Taurus application under the offscreen platform, and waiting in it."""

    def __init__(self, name: str) -> None:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        from taurus.external.qt import Qt
        from taurus.qt.qtgui.application import TaurusApplication

        self.Qt = Qt
        self.app = TaurusApplication([sys.argv[0]], cmd_line_parser=None, app_name=name,
                                     org_name="scingestor")
        sys.excepthook = sys.__excepthook__  # not Taurus' dialog box: fail at once

    def wait(self, what: str, predicate: Callable[[], Any],
             shown: Callable[[], Any] = lambda: "") -> Any:
        deadline = time.monotonic() + TIMEOUT
        while True:
            self.app.processEvents(self.Qt.QEventLoop.AllEvents, 50)
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not shown within {TIMEOUT} s; shown: {shown()}")
            time.sleep(0.02)

    def settle(self, seconds: float = 0.5) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.app.processEvents(self.Qt.QEventLoop.AllEvents, 50)
            time.sleep(0.02)

    def save(self, widget: Any, paths: Sequence[str]) -> List[int]:
        self.settle(0.3)
        image = widget.grab()
        for path in paths:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            if not image.save(path, "PNG"):
                raise AssertionError(f"cannot save {path}")
        return [image.width(), image.height()]


def _scans(rows: List[List[str]]) -> List[str]:
    return [row[1] for row in rows]


def child_history(args: argparse.Namespace) -> Dict[str, Any]:
    qt = Qt_("scingestor-history-test")
    from scingestor_gui.panel import IngestorPanel

    panel = IngestorPanel()
    panel.setModel(args.device)
    panel.resize(1180, max(panel.sizeHint().height(), 720))
    panel.show()
    history = panel.history
    history.trend.window = 120.0  # the last two minutes: the burst is visible
    opened: List[str] = []
    history.urlOpener = lambda url: opened.append(url.toString())
    shown = lambda: {"recent": history.recentRows(), "failed": history.failedRows(),  # noqa: E731
                     "message": panel.message()}
    seen: Dict[str, Any] = {}
    qt.wait("the device", lambda: panel.valueWidget("State").text() == "ON", shown)
    with open(args.list_file, "a", encoding="utf-8") as handle:  # the burst
        handle.write("".join("\n" + scan for scan in args.scan))
    count = len(args.scan)
    qt.wait("the burst in the history", lambda: len(history.recentRows()) >= count
            and len(history.failedRows()) == 1, shown)
    qt.wait("the queue drained", lambda: panel.valueWidget("QueueLength").text().split()[:1]
            == ["0"], shown)
    qt.wait("a trend sample", lambda: history.trend.samples("QueueLength"), shown)
    table = history.recentTable
    seen["recent"] = history.recentRows()
    seen["recent_colours"] = [table.item(row, 0).background().color().name()
                              for row in range(table.rowCount())]
    seen["failed"] = history.failedRows()
    seen["failed_tip"] = history.failedTable.item(0, 0).toolTip()
    failed_row = [row[2] for row in seen["recent"]].index("FAILED")
    seen["recent_failed_tip"] = table.item(failed_row, 0).toolTip()
    seen["web_url"] = history.webUrl
    seen["open_visible"] = history.openButton.isVisibleTo(panel)
    created_row = [row[2] for row in seen["recent"]].index("created")
    table.selectRow(created_row)
    history.openButton.click()
    seen["opened"] = opened
    seen["queue_samples"] = len(history.trend.samples("QueueLength"))
    seen["rate_samples"] = history.trend.samples("ScansPerMinute")
    history.failedTable.selectRow(0)
    seen["size"] = qt.save(panel, args.picture)

    finished: List[Any] = []
    panel.commandFinished.connect(lambda *result: finished.append(list(result)))
    history.retryButton.click()
    qt.wait("the retry command", lambda: finished, shown)
    seen["retry"] = finished[-1]
    qt.wait("the failed scan retried", lambda: not history.failedRows()
            and len(history.recentRows()) > len(seen["recent"]), shown)
    seen["recent_after"] = history.recentRows()
    seen["retry_all_enabled"] = history.retryAllButton.isEnabled()
    panel.setModel("")
    return seen


def child_overview(args: argparse.Namespace) -> Dict[str, Any]:
    qt = Qt_("scingestor-gui")
    from scingestor_gui.gui import IngestorGui
    from scingestor_gui.overview import find_ingestors

    devices = find_ingestors()
    gui = IngestorGui(devices, settingsname=args.settings)
    gui.resize(1000, 420)
    gui.show()
    overview = gui.overview
    seen: Dict[str, Any] = {"found": devices, "panels": gui.getPanelNames()}
    qt.wait("the rows", lambda: all(row["state"] == "ON" and row["last"] not in ("-----", "")
                                    and row["queue"] for row in overview.rows()),
            overview.rows)
    seen["rows"] = overview.rows()
    seen["size"] = qt.save(gui, args.picture)
    overview.openButton(0).click()
    qt.settle(0.5)
    seen["ingestor_panels"] = gui.ingestorPanels()
    panel = gui.getPanel(gui.ingestorPanels()[0]).widget()
    seen["panel_model"] = panel.getModel()
    qt.wait("the opened panel", lambda: panel.valueWidget("State").text() == "ON")
    seen["panel_ingested"] = qt.wait("the count", lambda: panel.valueWidget(
        "IngestedCount").text())
    gui.savePerspective("hall")
    gui.saveSettings()
    seen["perspectives"] = gui.getPerspectivesList()
    gui.hide()
    return seen


def child_restore(args: argparse.Namespace) -> Dict[str, Any]:
    """``scingestor-gui`` started again with the same settings (a new process)."""
    qt = Qt_("scingestor-gui")
    from scingestor_gui.gui import OVERVIEW_PANEL, IngestorGui
    from scingestor_gui.overview import find_ingestors

    again = IngestorGui(find_ingestors(), settingsname=args.settings)
    qt.settle(0.3)
    seen: Dict[str, Any] = {"restored_panels": again.ingestorPanels(),
                            "overview_panel": OVERVIEW_PANEL in again.getPanelNames(),
                            "perspectives": again.getPerspectivesList()}
    restored = [again.getPanel(name).widget() for name in again.ingestorPanels()]
    seen["restored_models"] = [widget.getModel() for widget in restored]
    again.hide()
    return seen


def child_text(args: argparse.Namespace) -> Dict[str, Any]:
    """A terminal-like picture of a text file (lines starting with '!' in red)."""
    qt = Qt_("scingestor-text")
    Qt = qt.Qt
    with open(args.input, encoding="utf-8") as handle:
        lines = handle.read().rstrip("\n").split("\n")
    font = Qt.QFont("DejaVu Sans Mono", 10)
    font.setStyleHint(Qt.QFont.Monospace)
    font.setFixedPitch(True)
    metrics = Qt.QFontMetrics(font)
    columns = args.columns
    wrapped = []
    for line in lines:  # a terminal wraps long lines
        mark = "!" if line.startswith("!") else ""
        body = line[len(mark):]
        while len(body) > columns:
            wrapped.append(mark + body[:columns])
            body = body[columns:]
        wrapped.append(mark + body)
    lines = wrapped
    width = metrics.horizontalAdvance("M" * columns) + 24
    height = metrics.lineSpacing() * len(lines) + 24
    image = Qt.QImage(width, height, Qt.QImage.Format_RGB32)
    image.fill(Qt.QColor("#1e1e1e"))
    painter = Qt.QPainter(image)
    painter.setFont(font)
    for index, line in enumerate(lines):
        colour = "#d4d4d4"
        if line.startswith("!"):
            line, colour = line[1:], "#f48771"
        elif " [" in line and "]: " in line and line.split(" [", 1)[0].startswith("Door"):
            colour = "#6fc36f"
        painter.setPen(Qt.QColor(colour))
        painter.drawText(12, 12 + metrics.ascent() + index * metrics.lineSpacing(), line)
    painter.end()
    for path in args.picture:
        if not image.save(path, "PNG"):
            raise AssertionError(f"cannot save {path}")
    return {"size": [width, height], "lines": len(lines)}


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="gui_child.py")
    parser.add_argument("scenario", choices=["history", "overview", "restore", "text"])
    parser.add_argument("--device")
    parser.add_argument("--list-file")
    parser.add_argument("--scan", action="append", default=[])
    parser.add_argument("--settings")
    parser.add_argument("--input")
    parser.add_argument("--columns", type=int, default=100)
    parser.add_argument("--picture", action="append", default=[])
    args = parser.parse_args(argv)
    # a modal dialog would block for ever offscreen: show where, and end, before pytest's limit
    faulthandler.dump_traceback_later(240, exit=True)
    scenario = {"history": child_history, "overview": child_overview,
                "restore": child_restore, "text": child_text}
    print("RESULT " + json.dumps(scenario[args.scenario](args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
