"""``IngestorOverview``: one row per ``SciCatIngestor`` device of a beamline or hall.

Each row shows the device's state (a ``TaurusLed`` and the state's name), its queue
length, the time of its last successful ingestion (``LastIngestionTime``) and its
failed count, all following the device's change events, and an *Open* button. *Open*
(or a double click on the row) emits ``deviceActivated(device)``; the application
``scingestor-gui`` (:mod:`scingestor_gui.app`) opens the device's full
:class:`~scingestor_gui.panel.IngestorPanel` then. Without a receiver, the overview opens
the panel in a window of its own.

The devices are given with :meth:`IngestorOverview.setDevices`, or found with
:func:`find_ingestors` in a Tango database (every device of the class
``SciCatIngestor``, whether its server runs or not).
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Sequence

import tango
from taurus.external.qt import Qt
from taurus.qt.qtgui.display import TaurusLabel, TaurusLed

from scingestor_gui.feed import AttributeFeed
from scingestor_gui.names import attribute_model
from scingestor_gui.records import clock

logger = logging.getLogger(__name__)

CLASS = "SciCatIngestor"
#: (key, column title, tool tip) of the overview table.
COLUMNS = (
    ("device", "Ingestor", "The SciCatIngestor device"),
    ("state", "State", "Tango state of the device"),
    ("queue", "Queue", "List entries waiting to be ingested (QueueLength)"),
    ("last", "Last ingestion", "When the device last ingested a scan (LastIngestionTime)"),
    ("failed", "Failed", "Failed ingestion attempts since the service started (FailedCount)"),
    ("open", "", "Open the device's full panel"),
)


def find_ingestors(tango_host: str = "", klass: str = CLASS) -> List[str]:
    """The devices of class ``klass`` in the Tango database, sorted.

    ``tango_host`` (``host:port``) names the database; empty: the one of ``TANGO_HOST``
    (the names are then plain ``domain/family/member``, else ``tango://host:port/...``).
    """
    if tango_host:
        host, _, port = tango_host.rpartition(":")
        database = tango.Database(host, int(port))
    else:
        database = tango.Database()
    names = sorted({str(name) for name in database.get_device_name("*", klass)},
                   key=str.lower)
    return [f"tango://{tango_host}/{name}" if tango_host else name for name in names]


def _label(model: str, tip: str) -> TaurusLabel:
    label = TaurusLabel()
    label.setBgRole("none")
    label.setAutoTrim(False)
    label.setAlignment(Qt.Qt.AlignRight | Qt.Qt.AlignVCenter)
    label.setToolTip(tip)
    label.setModel(model)
    return label


class _Row:
    """The widgets of one device's row."""

    def __init__(self, overview: IngestorOverview, device: str, tips: Dict[str, str]) -> None:
        self.device = device
        self.led = TaurusLed()
        self.led.setModel(attribute_model(device, "State"))
        self.state = TaurusLabel()
        self.state.setBgRole("none")
        self.state.setModel(attribute_model(device, "State"))
        self.stateBox = Qt.QWidget()
        box = Qt.QHBoxLayout(self.stateBox)
        box.setContentsMargins(2, 0, 2, 0)
        box.addWidget(self.led)
        box.addWidget(self.state, 1)
        self.stateBox.setToolTip(tips["state"])
        self.queue = _label(attribute_model(device, "QueueLength"), tips["queue"])
        self.failed = _label(attribute_model(device, "FailedCount"), tips["failed"])
        self.last = Qt.QLabel("-----")
        self.last.setToolTip(tips["last"])
        self.last.setAlignment(Qt.Qt.AlignCenter)
        self.lastValue: Optional[float] = None
        self.feed = AttributeFeed(["LastIngestionTime"], overview)
        self.feed.valueChanged.connect(self._on_last)
        self.feed.setDevice(device)
        self.openButton = Qt.QPushButton("Open")
        self.openButton.setToolTip(f"Open the panel of {device}")
        self.openButton.clicked.connect(lambda: overview.openDevice(device))

    def _on_last(self, attribute: str, value: Any) -> None:
        try:
            self.lastValue = float(value) if value is not None else None
        except (TypeError, ValueError):
            self.lastValue = None
        self.last.setText(clock(self.lastValue, with_date=True) if self.lastValue else
                          ("never" if self.lastValue == 0 else "-----"))

    def texts(self) -> Dict[str, str]:
        return {"device": self.device, "state": self.state.text(),
                "led": bool(self.led.ledStatus), "queue": self.queue.text(),
                "last": self.last.text(), "failed": self.failed.text()}

    def clear(self) -> None:
        self.feed.clear()
        for widget in (self.led, self.state, self.queue, self.failed):
            widget.setModel("")


class IngestorOverview(Qt.QWidget):
    """The ingestors of a beamline or hall, one row each (:meth:`setDevices`)."""

    deviceActivated = Qt.pyqtSignal(str)

    def __init__(self, parent: Optional[Qt.QWidget] = None) -> None:
        Qt.QWidget.__init__(self, parent)
        self._rows: List[_Row] = []
        self._windows: Dict[str, Qt.QWidget] = {}
        layout = Qt.QVBoxLayout(self)
        self.heading = Qt.QLabel("SciCat ingestors")
        font = self.heading.font()
        font.setBold(True)
        self.heading.setFont(font)
        layout.addWidget(self.heading)
        self.table = Qt.QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels([title for _, title, _ in COLUMNS])
        for index, (_, _, tip) in enumerate(COLUMNS):
            self.table.horizontalHeaderItem(index).setToolTip(tip)
        self.table.setEditTriggers(Qt.QAbstractItemView.NoEditTriggers)
        self.table.setSelectionBehavior(Qt.QAbstractItemView.SelectRows)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 14)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(Qt.QHeaderView.ResizeToContents)
        header.setSectionResizeMode(0, Qt.QHeaderView.Stretch)
        self.table.cellDoubleClicked.connect(
            lambda row, column: self.openDevice(self._rows[row].device))
        layout.addWidget(self.table, 1)
        self.note = Qt.QLabel("Double-click a row, or Open, for the ingestor's full panel.")
        layout.addWidget(self.note)

    def setDevices(self, devices: Sequence[str]) -> None:
        """Show ``devices`` (Tango device names), one row each, in that order."""
        for row in self._rows:
            row.clear()
        self._rows = []
        self.table.setRowCount(0)
        tips = {key: tip for key, _, tip in COLUMNS}
        for index, device in enumerate(devices):
            row = _Row(self, str(device), tips)
            self._rows.append(row)
            self.table.insertRow(index)
            item = Qt.QTableWidgetItem(str(device))
            item.setToolTip(str(device))
            self.table.setItem(index, 0, item)
            self.table.setCellWidget(index, 1, row.stateBox)
            self.table.setCellWidget(index, 2, row.queue)
            self.table.setCellWidget(index, 3, row.last)
            self.table.setCellWidget(index, 4, row.failed)
            self.table.setCellWidget(index, 5, row.openButton)
        self.heading.setText(f"SciCat ingestors ({len(self._rows)})" if self._rows else
                             "SciCat ingestors: none found")

    def devices(self) -> List[str]:
        """The devices shown, top to bottom."""
        return [row.device for row in self._rows]

    def rows(self) -> List[Dict[str, Any]]:
        """What each row shows: device, state, led, queue, last, failed (texts)."""
        return [row.texts() for row in self._rows]

    def openButton(self, index: int) -> Qt.QPushButton:
        """The *Open* button of row ``index``."""
        return self._rows[index].openButton

    def openDevice(self, device: str) -> None:
        """Open the full panel of ``device``: ``deviceActivated``, else a window of its own."""
        logger.info("opening the panel of %s", device)
        if self.receivers(self.deviceActivated) > 0:
            self.deviceActivated.emit(device)
            return
        from scingestor_gui.panel import IngestorPanel

        window = self._windows.get(device)
        if window is None:
            window = IngestorPanel()
            window.setModel(device)
            window.setWindowTitle(f"SciCat ingestor - {device}")
            self._windows[device] = window
        window.show()
        window.raise_()
