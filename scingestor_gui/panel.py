"""``IngestorPanel``: a Taurus panel for one ``SciCatIngestor`` Tango device.

The panel shows the ingestion status (state and status, current measurement, queue
length, ingested and failed counts, last ingested scan, last error and its time, SciCat
reachability, scan directory and re-ingestion progress) with Taurus widgets, so every
value follows the device's change events. Below it, buttons start and stop a
measurement and re-ingest a scan or the whole beamtime. The result of a command, or
the device's error message when it fails, is shown in the message line at the bottom.
Every command is sent with the panel's own scan directory (``StartMeasurementIn``,
``StopMeasurementIn``, ``ReingestIn``), never through the device's shared ``ScanDir``.
On the right, :class:`scingestor_gui.history.HistoryView` (``panel.history``) shows the
recent ingestions, the failed scans (*Retry selected* runs ``RetryFailedIn``, *Retry
all* ``RetryAllFailed``), a trend of queue and rate, and *Open in SciCat*.

Set the model to the device name, e.g. ``p00/scicatingestor/1``,
``tango://tango-host:10000/p00/scicatingestor/1`` or, for a server without a
database, ``tango://host:port/p00/scicatingestor/1#dbase=no``. Used as a TaurusGUI
panel, the class path is ``scingestor_gui.panel:IngestorPanel`` and the panel
description's ``model`` is that device name (see docs/panel.md).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import tango
from taurus.core.taurusdevice import TaurusDevice
from taurus.external.qt import Qt
from taurus.qt.qtgui.container import TaurusWidget
from taurus.qt.qtgui.display import TaurusLabel, TaurusLed

from scingestor_gui.history import HistoryView
from scingestor_gui.names import attribute_model

logger = logging.getLogger(__name__)

#: (attribute, row label, tool tip) of the status rows, top to bottom.
STATUS_ROWS: Tuple[Tuple[str, str, str], ...] = (
    ("State", "State", "Tango state of the ingestor device"),
    ("Status", "Status", "Why the device is in its state"),
    ("CurrentMeasurement", "Current measurement",
     "Measurement open in the scan directory (empty: none)"),
    ("ScanDir", "Scan directory",
     "Scan directory the commands act on (empty: the most recently active one)"),
    ("QueueLength", "Queue length", "List entries waiting to be ingested"),
    ("IngestedCount", "Ingested datasets", "Datasets ingested since the service started"),
    ("FailedCount", "Failed ingestions", "Failed ingestion attempts since the service started"),
    ("LastIngestedScan", "Last ingested scan", "Scan or measurement ingested last"),
    ("LastError", "Last error", "The last ingestion or SciCat error (empty: none)"),
    ("LastErrorTime", "Last error time", "When the last error happened (ISO 8601)"),
    ("SciCatReachable", "SciCat reachable", "True when the last request to SciCat was answered"),
    ("ReingestProgress", "Re-ingestion progress",
     "n/total list-file while a whole beamtime is re-ingested"),
)

_WRAPPED = ("Status", "LastError", "ScanDir", "LastIngestedScan")
_ERROR_STYLE = "color: #b00000; font-weight: bold;"
_COMMAND_TIMEOUT_MS = 10000


def _input_row(title: str, caption: str, placeholder: str, tip: str,
               buttons: List[Tuple[str, str]]) -> Tuple[Qt.QGroupBox, Qt.QLineEdit,
                                                        List[Qt.QPushButton]]:
    """A group box ``title`` with one row: ``caption``, a line edit and push buttons.

    The line edit gets ``placeholder`` and the tool tip ``tip`` and takes the free
    width; ``buttons`` are ``(text, tool tip)`` pairs. Returns the box, the line edit
    and the buttons (in the order given).
    """
    box = Qt.QGroupBox(title)
    row = Qt.QHBoxLayout(box)
    edit = Qt.QLineEdit()
    edit.setPlaceholderText(placeholder)
    edit.setToolTip(tip)
    made: List[Qt.QPushButton] = []
    for text, button_tip in buttons:
        button = Qt.QPushButton(text)
        button.setToolTip(button_tip)
        made.append(button)
    row.addWidget(Qt.QLabel(caption))
    row.addWidget(edit, 1)
    for button in made:
        row.addWidget(button)
    return box, edit, made


def _device_error(exc: BaseException) -> str:
    """A one-line message for an exception raised by a device call."""
    if isinstance(exc, tango.DevFailed) and exc.args:
        descriptions = [str(error.desc).strip() for error in exc.args if str(error.desc).strip()]
        if descriptions:
            return " ".join(descriptions[0].split())
    return " ".join(str(exc).split()) or type(exc).__name__


class IngestorPanel(TaurusWidget):
    """Status and control panel of a ``SciCatIngestor`` device (the model: a device name).

    Public members useful to scripts and tests: :meth:`valueWidget` (the Taurus widget
    showing an attribute), ``scanDirEdit``, :meth:`scanDir`, ``measurementEdit``,
    ``startButton``, ``stopButton``, ``scanEdit``, ``reingestButton``, :meth:`message` and
    the signal ``commandFinished(command, ok, message)`` emitted after every command.
    """

    commandFinished = Qt.pyqtSignal(str, bool, str)

    def __init__(self, parent: Optional[Qt.QWidget] = None, designMode: bool = False) -> None:
        TaurusWidget.__init__(self, parent, designMode=designMode)
        self._values: Dict[str, TaurusLabel] = {}
        self._leds: Dict[str, TaurusLed] = {}
        outer = Qt.QVBoxLayout(self)
        self._title = Qt.QLabel("SciCat ingestor: no device")
        font = self._title.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.2)
        self._title.setFont(font)
        self._title.setTextInteractionFlags(Qt.Qt.TextSelectableByMouse)
        outer.addWidget(self._title)
        columns = Qt.QHBoxLayout()
        outer.addLayout(columns, 1)
        layout = Qt.QVBoxLayout()
        columns.addLayout(layout, 0)
        #: recent ingestions, failed scans (retry) and the trend (scingestor_gui.history)
        self.history = HistoryView()
        self.history.retryRequested.connect(self.retryFailed)
        self.history.retryAllRequested.connect(self.retryAllFailed)
        columns.addWidget(self.history, 1)
        layout.addWidget(self._build_status())
        layout.addWidget(self._build_scandir())
        layout.addWidget(self._build_measurement())
        layout.addWidget(self._build_reingest())
        self._message = Qt.QLabel("")
        self._message.setWordWrap(True)
        self._message.setTextInteractionFlags(Qt.Qt.TextSelectableByMouse)
        self._message.setMinimumHeight(self._message.fontMetrics().height() * 2)
        layout.addWidget(self._message)
        layout.addStretch(1)
        self._set_controls_enabled(False)

    # -- construction ----------------------------------------------------------------------------
    def _build_status(self) -> Qt.QGroupBox:
        box = Qt.QGroupBox("Ingestion status")
        form = Qt.QFormLayout(box)
        form.setFieldGrowthPolicy(Qt.QFormLayout.AllNonFixedFieldsGrow)
        for attribute, text, tip in STATUS_ROWS:
            label = TaurusLabel()
            label.setToolTip(tip)
            label.setSizePolicy(Qt.QSizePolicy.Expanding, Qt.QSizePolicy.Preferred)
            label.setAutoTrim(False)  # the whole text, not a "..." link
            label.setAlignment(Qt.Qt.AlignLeft | Qt.Qt.AlignVCenter)
            label.setFrameShape(Qt.QFrame.StyledPanel)
            # The state in its Tango colour; the other values plain (errors show "-----").
            label.setBgRole("value" if attribute == "State" else "none")
            if attribute in _WRAPPED:
                label.setWordWrap(True)
            self._values[attribute] = label
            field: Qt.QWidget = label
            if attribute == "SciCatReachable":
                led = TaurusLed()
                led.setOffColor("red")
                led.setToolTip(tip)
                self._leds[attribute] = led
                field = Qt.QWidget()
                row = Qt.QHBoxLayout(field)
                row.setContentsMargins(0, 0, 0, 0)
                row.addWidget(led)
                row.addWidget(label, 1)
            caption = Qt.QLabel(text + ":")
            caption.setToolTip(tip)
            form.addRow(caption, field)
        return box

    def _build_scandir(self) -> Qt.QGroupBox:
        box, self.scanDirEdit, _ = _input_row(
            "Scan directory", "Directory:", "absolute path (empty: the device's ScanDir)",
            "Scan directory the buttons below act on; it is sent with every command. Left "
            "empty, the device's ScanDir (else its most recently active directory) is "
            "filled in at the first command.", [])
        return box

    def _build_measurement(self) -> Qt.QGroupBox:
        box, self.measurementEdit, (self.startButton, self.stopButton) = _input_row(
            "Measurement", "Name:", "measurement name",
            "Name of the measurement to start (no spaces)",
            [("Start measurement", "StartMeasurement(name): closes the open measurement, "
              "if any, and opens this one"),
             ("Stop measurement", "StopMeasurement(): closes the open measurement and "
              "ingests its dataset")])
        self.startButton.clicked.connect(self.startMeasurement)
        self.measurementEdit.returnPressed.connect(self.startMeasurement)
        self.stopButton.clicked.connect(self.stopMeasurement)
        return box

    def _build_reingest(self) -> Qt.QGroupBox:
        box, self.scanEdit, (self.reingestButton,) = _input_row(
            "Re-ingestion", "Scan:", "scan name (empty: whole beamtime)",
            "Scan to re-ingest; leave it empty to re-ingest every list of the beamtime",
            [("Reingest", "Reingest(scan): one scan, or the whole beamtime when "
              "the field is empty")])
        self.reingestButton.clicked.connect(self.reingest)
        self.scanEdit.returnPressed.connect(self.reingest)
        return box

    # -- model -----------------------------------------------------------------------------------
    def getModelClass(self, **kwargs: Any) -> type:
        """The model of the panel is a device."""
        return TaurusDevice

    def setModel(self, model: Any, **kwargs: Any) -> None:
        """Show the device ``model`` (a device name; empty: none)."""
        TaurusWidget.setModel(self, model, **kwargs)
        device = str(model or "").strip()
        # Taurus' full name is normalised (host with domain, alias resolved, tango-nodb).
        modelobj = self.getModelObj() if device else None
        base = modelobj.getFullName() if modelobj is not None else device
        for attribute, label in self._values.items():
            label.setModel(attribute_model(base, attribute) if device else "")
        for attribute, led in self._leds.items():
            led.setModel(attribute_model(base, attribute) if device else "")
        self.history.setDevice(base if device and modelobj is not None else "")
        self._title.setText(f"SciCat ingestor: {device}" if device else
                            "SciCat ingestor: no device")
        self._set_controls_enabled(bool(device))
        self._show("")
        if device and self.getModelObj() is None:
            self._show(f"{device!r} is not a valid Tango device name.", error=True)

    def valueWidget(self, attribute: str) -> TaurusLabel:
        """The Taurus label showing ``attribute`` (one of :data:`STATUS_ROWS`)."""
        return self._values[attribute]

    def ledWidget(self, attribute: str = "SciCatReachable") -> TaurusLed:
        """The Taurus LED of a boolean attribute (only ``SciCatReachable``)."""
        return self._leds[attribute]

    def attributeNames(self) -> List[str]:
        """The attributes the panel shows, top to bottom."""
        return [attribute for attribute, _, _ in STATUS_ROWS]

    def title(self) -> str:
        """The heading of the panel (names the device)."""
        return self._title.text()

    def message(self) -> str:
        """The text of the message line (result or error of the last command)."""
        return self._message.text()

    # -- commands --------------------------------------------------------------------------------
    def scanDir(self) -> str:
        """The scan directory the commands act on: the field, else the device's default.

        An empty field is filled once with the device's ``ScanDir`` (else
        ``CurrentScanDir``), so the directory of every command is explicit and shown;
        another client changing ``ScanDir`` later does not move this panel.
        """
        directory = self.scanDirEdit.text().strip()
        if directory:
            return directory
        proxy = self._proxy()
        for attribute in ("ScanDir", "CurrentScanDir"):
            directory = str(proxy.read_attribute(attribute).value or "").strip()
            if directory:
                self.scanDirEdit.setText(directory)
                return directory
        raise RuntimeError("no scan directory: type one in the Scan directory field")

    def startMeasurement(self) -> None:
        """Run ``StartMeasurementIn([scandir, name])`` with the name field."""
        name = self.measurementEdit.text().strip()
        self._run("StartMeasurementIn", [name],
                  lambda scandir: f"Measurement {name!r} started in {scandir}.")

    def stopMeasurement(self) -> None:
        """Run ``StopMeasurementIn([scandir])``."""
        self._run("StopMeasurementIn", [],
                  lambda name: f"Measurement {name!r} stopped; its dataset is being ingested."
                  if name else "No measurement was open.")

    def reingest(self) -> None:
        """Run ``ReingestIn([scandir, scan])`` with the scan field (empty: the whole beamtime)."""
        scan = self.scanEdit.text().strip()
        if scan:
            self._run("ReingestIn", [scan],
                      lambda result: f"Scan {result!r} queued for re-ingestion.")
        else:
            self._run("ReingestIn", [""], lambda result: f"Re-ingesting beamtime {result} in "
                      "the background (see Re-ingestion progress).")

    def retryFailed(self, scandir: str, scan: str) -> None:
        """Run ``RetryFailedIn([scandir, scan])`` (the *Retry selected* button)."""
        self._call(command="RetryFailedIn", argin=lambda: [scandir, scan],
                   describe=lambda result: f"Scan {scan!r} in {scandir} queued for a retry.")

    def retryAllFailed(self) -> None:
        """Run ``RetryAllFailed()`` (the *Retry all* button)."""
        self._call(command="RetryAllFailed", argin=None,
                   describe=lambda count: f"{count} failed scan(s) queued for a retry.")

    def _run(self, command: str, arguments: List[str],
             describe: Callable[[Any], str]) -> None:
        """Call ``command([scandir, *arguments])``; show the result or the error."""
        self._call(command, lambda: [self.scanDir(), *arguments], describe)

    def _call(self, command: str, argin: Optional[Callable[[], List[str]]],
              describe: Callable[[Any], str]) -> None:
        """Call ``command(argin())`` (no argument when ``argin`` is None); show the outcome."""
        try:
            proxy = self._proxy()
            arguments = argin() if argin is not None else None
            Qt.QApplication.setOverrideCursor(Qt.Qt.WaitCursor)
            try:
                timeout = proxy.get_timeout_millis()
                proxy.set_timeout_millis(max(timeout, _COMMAND_TIMEOUT_MS))
                try:
                    result = (proxy.command_inout(command, arguments) if argin is not None
                              else proxy.command_inout(command))
                finally:
                    proxy.set_timeout_millis(timeout)
            finally:
                Qt.QApplication.restoreOverrideCursor()
        except Exception as exc:  # every failure goes to the message line, not a traceback
            text = f"{command} failed: {_device_error(exc)}"
            logger.warning("%s on %s: %s", command, self.getModel(), text)
            self._show(text, error=True)
            self.commandFinished.emit(command, False, text)
            return
        text = describe(result)
        logger.info("%s on %s: %s", command, self.getModel(), text)
        self._show(text)
        self.commandFinished.emit(command, True, text)

    def _proxy(self) -> tango.DeviceProxy:
        device = self.getModelObj()
        if device is None:
            raise RuntimeError(f"no valid device is set (model {self.getModel()!r})")
        proxy = device.getDeviceProxy()
        if proxy is None:
            raise RuntimeError(f"cannot connect to {device.getFullName()}")
        return proxy

    def _show(self, text: str, error: bool = False) -> None:
        stamp = time.strftime("%H:%M:%S ") if text else ""
        self._message.setStyleSheet(_ERROR_STYLE if error else "")
        self._message.setText(stamp + text)

    def _set_controls_enabled(self, enabled: bool) -> None:
        for widget in (self.scanDirEdit, self.measurementEdit, self.startButton,
                       self.stopButton, self.scanEdit, self.reingestButton):
            widget.setEnabled(enabled)

    @classmethod
    def getQtDesignerPluginInfo(cls) -> Optional[Dict[str, Any]]:
        """Not offered in Qt Designer."""
        return None
