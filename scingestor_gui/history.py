"""``HistoryView``: what happened to the scans -- recent ingestions, failed scans, the trend.

Part of :class:`scingestor_gui.panel.IngestorPanel` (its right-hand side), usable on
its own. It follows the device's ``RecentIngestions``, ``FailedScans``,
``QueueLength``, ``ScansPerMinute`` and ``SciCatWebUrl`` (docs/tango.md) and shows:

* the recent ingestions, newest first, one row per scan or measurement, coloured by
  result (created, new version, patched, unchanged, failed), the server's message as
  the row's tool tip; *Open in SciCat* (button, double click, context menu) opens
  the record's ``url`` with ``QDesktopServices`` when the device has ``SciCatWebUrl``;
* the failed scans waiting for a retry, with *Retry selected* and *Retry all*;
* :class:`scingestor_gui.trend.RateTrend` of the queue length and ingestion rate.

It sends no command itself: it emits ``retryRequested(scandir, scan)``,
``retryAllRequested()`` and ``urlOpened(url)``; the panel runs the commands.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from taurus.external.qt import Qt

from scingestor_gui.feed import AttributeFeed
from scingestor_gui.records import (
    FAILED_COLUMNS,
    RECENT_COLUMNS,
    cell_text,
    parse_records,
    result_colour,
    short_dir,
    tool_tip,
)
from scingestor_gui.trend import CURVES, RateTrend

logger = logging.getLogger(__name__)

ATTRIBUTES = ("RecentIngestions", "FailedScans", "SciCatWebUrl") + tuple(
    name for name, _, _ in CURVES)


def _table(columns: Sequence[Tuple[str, str]], stretch: str) -> Qt.QTableWidget:
    """A read-only, row-selecting table with ``columns``; ``stretch`` takes the free width."""
    table = Qt.QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels([title for _, title in columns])
    table.setEditTriggers(Qt.QAbstractItemView.NoEditTriggers)
    table.setSelectionBehavior(Qt.QAbstractItemView.SelectRows)
    table.setSelectionMode(Qt.QAbstractItemView.SingleSelection)
    table.verticalHeader().setVisible(False)
    table.verticalHeader().setDefaultSectionSize(table.fontMetrics().height() + 6)
    header = table.horizontalHeader()
    for index, (key, _) in enumerate(columns):
        header.setSectionResizeMode(index, Qt.QHeaderView.Stretch if key == stretch
                                    else Qt.QHeaderView.ResizeToContents)
    return table


def _fill(table: Qt.QTableWidget, columns: Sequence[Tuple[str, str]],
          records: List[Dict[str, Any]], coloured: bool) -> None:
    table.setRowCount(len(records))
    for row, record in enumerate(records):
        tip = tool_tip(record)
        colour = result_colour(record) if coloured else None
        for column, (key, _) in enumerate(columns):
            text = cell_text(record, key)
            item = Qt.QTableWidgetItem(short_dir(text) if key == "scandir" else text)
            item.setToolTip(tip)
            if colour:
                item.setBackground(Qt.QBrush(Qt.QColor(colour)))
                item.setForeground(Qt.QBrush(Qt.QColor("black")))
            table.setItem(row, column, item)


def table_rows(table: Qt.QTableWidget) -> List[List[str]]:
    """The texts of a table, row by row (for scripts and tests)."""
    return [[table.item(row, column).text() if table.item(row, column) else ""
             for column in range(table.columnCount())] for row in range(table.rowCount())]


class HistoryView(Qt.QWidget):
    """Recent ingestions, failed scans and the trend of one device (:meth:`setDevice`)."""

    retryRequested = Qt.pyqtSignal(str, str)
    retryAllRequested = Qt.pyqtSignal()
    urlOpened = Qt.pyqtSignal(str)

    def __init__(self, parent: Optional[Qt.QWidget] = None) -> None:
        Qt.QWidget.__init__(self, parent)
        #: opens a URL; QDesktopServices.openUrl (a test may put a recorder here)
        self.urlOpener: Callable[[Qt.QUrl], Any] = Qt.QDesktopServices.openUrl
        self.recent: List[Dict[str, Any]] = []
        self.failed: List[Dict[str, Any]] = []
        self.webUrl = ""
        self.feed = AttributeFeed(ATTRIBUTES, self)
        self.feed.valueChanged.connect(self._on_value)
        layout = Qt.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._build_recent(), 3)
        layout.addWidget(self._build_failed(), 2)
        box = Qt.QGroupBox("Queue and ingestion rate")
        self.trend = RateTrend()
        Qt.QVBoxLayout(box).addWidget(self.trend)
        layout.addWidget(box, 2)

    def _build_recent(self) -> Qt.QGroupBox:
        box = Qt.QGroupBox("Recent ingestions (newest first)")
        column = Qt.QVBoxLayout(box)
        self.recentTable = _table(RECENT_COLUMNS, "pid")
        self.recentTable.setContextMenuPolicy(Qt.Qt.ActionsContextMenu)
        self.openAction = Qt.QAction("Open in SciCat", self.recentTable)
        self.openAction.setToolTip("Open the dataset page of the selected scan in a web browser")
        self.openAction.triggered.connect(self.openSelected)
        self.recentTable.addAction(self.openAction)
        self.recentTable.itemSelectionChanged.connect(self._update_buttons)
        self.recentTable.itemDoubleClicked.connect(lambda item: self.openSelected())
        column.addWidget(self.recentTable)
        row = Qt.QHBoxLayout()
        self.recentSummary = Qt.QLabel("")
        row.addWidget(self.recentSummary, 1)
        self.openButton = Qt.QPushButton("Open in SciCat")
        self.openButton.setToolTip("Open the dataset page of the selected scan (the device's "
                                   "SciCatWebUrl; configuration key scicat_web_url)")
        self.openButton.clicked.connect(self.openSelected)
        row.addWidget(self.openButton)
        column.addLayout(row)
        return box

    def _build_failed(self) -> Qt.QGroupBox:
        box = Qt.QGroupBox("Failed scans waiting for a retry")
        column = Qt.QVBoxLayout(box)
        self.failedTable = _table(FAILED_COLUMNS, "message")
        self.failedTable.itemSelectionChanged.connect(self._update_buttons)
        column.addWidget(self.failedTable)
        row = Qt.QHBoxLayout()
        self.failedSummary = Qt.QLabel("")
        row.addWidget(self.failedSummary, 1)
        self.retryButton = Qt.QPushButton("Retry selected")
        self.retryButton.setToolTip("RetryFailedIn([scandir, scan]): ingest the selected "
                                    "scan again now")
        self.retryButton.clicked.connect(self.retrySelected)
        self.retryAllButton = Qt.QPushButton("Retry all")
        self.retryAllButton.setToolTip("RetryAllFailed(): ingest every failed scan again now")
        self.retryAllButton.clicked.connect(self.retryAllRequested.emit)
        row.addWidget(self.retryButton)
        row.addWidget(self.retryAllButton)
        column.addLayout(row)
        return box

    # -- model -----------------------------------------------------------------------------------
    def setDevice(self, device: str) -> None:
        """Follow ``device`` (a full Taurus device name; '' for none)."""
        self.recent, self.failed, self.webUrl = [], [], ""
        self.trend.clear()
        self._refresh()
        self.feed.setDevice(device)

    def _on_value(self, attribute: str, value: Any) -> None:
        if attribute == "RecentIngestions":
            self.recent = parse_records(value)
        elif attribute == "FailedScans":
            self.failed = parse_records(value)
        elif attribute == "SciCatWebUrl":
            self.webUrl = str(value or "")
        else:
            self.trend.addValue(attribute, value)
            return
        self._refresh()

    def _refresh(self) -> None:
        _fill(self.recentTable, RECENT_COLUMNS, self.recent, coloured=True)
        _fill(self.failedTable, FAILED_COLUMNS, self.failed, coloured=False)
        counts: Dict[str, int] = {}
        for record in self.recent:
            counts[str(record.get("result"))] = counts.get(str(record.get("result")), 0) + 1
        self.recentSummary.setText(", ".join(f"{n} {result}" for result, n in
                                             sorted(counts.items())) or "none yet")
        self.failedSummary.setText(f"{len(self.failed)} waiting" if self.failed else
                                   "none")
        self.openButton.setVisible(bool(self.webUrl))
        self.openAction.setVisible(bool(self.webUrl))
        self._update_buttons()

    def _update_buttons(self) -> None:
        self.openButton.setEnabled(bool(self._selected_url()))
        self.openAction.setEnabled(bool(self._selected_url()))
        self.retryButton.setEnabled(self._selected_failed() is not None)
        self.retryAllButton.setEnabled(bool(self.failed))

    # -- actions ---------------------------------------------------------------------------------
    def recentRows(self) -> List[List[str]]:
        """The texts of the recent ingestions table, newest first."""
        return table_rows(self.recentTable)

    def failedRows(self) -> List[List[str]]:
        """The texts of the failed scans table."""
        return table_rows(self.failedTable)

    def _selected_url(self) -> str:
        rows = {index.row() for index in self.recentTable.selectedIndexes()}
        if not self.webUrl or len(rows) != 1:
            return ""
        row = rows.pop()
        return str(self.recent[row].get("url") or "") if row < len(self.recent) else ""

    def _selected_failed(self) -> Optional[Dict[str, Any]]:
        rows = {index.row() for index in self.failedTable.selectedIndexes()}
        if len(rows) != 1:
            return None
        row = rows.pop()
        return self.failed[row] if row < len(self.failed) else None

    def openSelected(self) -> None:
        """Open the SciCat page of the selected recent ingestion (if it has one)."""
        url = self._selected_url()
        if not url:
            return
        logger.info("opening %s", url)
        self.urlOpener(Qt.QUrl(url))
        self.urlOpened.emit(url)

    def retrySelected(self) -> None:
        """Ask for a retry of the selected failed scan (``retryRequested``)."""
        record = self._selected_failed()
        if record is not None:
            self.retryRequested.emit(str(record.get("scandir") or ""),
                                     str(record.get("scan") or record.get("line") or ""))
