"""Tango device server ``SciCatIngestor``: the ingestion service behind a Tango interface.

The device owns one :class:`scingestor.service.IngestorService`. Attributes are read
from the service's status snapshot; a pump thread turns the service's status
notifications into Tango change (and archive) events, so clients such as Taurus
update without polling. Commands call the service; no ingestion logic lives here.

Start it like any PyTango server::

    SciCatIngestor <instance>                      # registered in the Tango database
    SciCatIngestor <instance> -nodb -port 10123 -dlist p00/scicatingestor/1
    python -m tango_ds.SciCatIngestor <instance>   # without the console script
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import queue
import sys
import threading
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, TypeVar

import tango
from tango import AttrWriteType, DevState, DispLevel
from tango.server import Device, attribute, command, device_property, run

from scingestor.config import ConfigError, IngestorConfig, load_config
from scingestor.logsetup import LOG_LEVELS, setup_logging
from scingestor.service import IngestorService, ServiceError
from scingestor.status import State, StatusSnapshot

logger = logging.getLogger(__name__)

#: ``DevFailed`` reasons raised by the commands.
BAD_ARGUMENT = "SciCatIngestor_BadArgument"
CONFIG_ERROR = "SciCatIngestor_ConfigError"
NOT_CONFIGURED = "SciCatIngestor_NotConfigured"
IO_ERROR = "SciCatIngestor_IOError"

_REFRESH = object()
_STOP = object()
_T = TypeVar("_T")


def _iso_time(stamp: float) -> str:
    """``stamp`` (epoch seconds) as local ISO 8601 with offset; '' for 0."""
    if not stamp:
        return ""
    moment = datetime.datetime.fromtimestamp(stamp).astimezone()
    return moment.isoformat(timespec="seconds")


def _sentence(text: str) -> str:
    text = text.strip()
    return text if not text or text[-1] in ".!?" else text + "."


def _measurement_lines(snapshot: StatusSnapshot) -> Tuple[str, ...]:
    return tuple(f"{scandir}: {name}"
                 for scandir, name in sorted(snapshot.current_measurements.items()))


def _throw(reason: str, message: str, origin: str) -> None:
    tango.Except.throw_exception(reason, message, f"SciCatIngestor.{origin}")


#: Attribute name -> value taken from the status snapshot. Every one of these has
#: change events pushed by the device; the read methods use the same table.
_SNAPSHOT_VALUES: Dict[str, Callable[[StatusSnapshot], Any]] = {
    "CurrentMeasurements": _measurement_lines,
    "CurrentScanDir": lambda s: s.current_scandir,
    "QueueLength": lambda s: s.queue_length,
    "LastError": lambda s: s.last_error,
    "LastErrorTime": lambda s: _iso_time(s.last_error_time),
    "IngestedCount": lambda s: s.ingested_count,
    "FailedCount": lambda s: s.failed_count,
    "PendingRetries": lambda s: s.pending_retries,
    "LastIngestedScan": lambda s: s.last_ingested_scan,
    "WatchedBeamtimes": lambda s: tuple(s.watched_beamtimes),
    "WatchedScanDirCount": lambda s: len(s.watched_scandirs),
    "WatchMode": lambda s: s.watch_mode,
    "SciCatReachable": lambda s: s.scicat_reachable,
    "SciCatUrl": lambda s: s.scicat_url,
    "ReingestProgress": lambda s: s.reingest_progress,
}
#: Attributes that also get archive events (a HDB++ archiver subscribes to these).
_ARCHIVED = ("State", "QueueLength", "IngestedCount", "FailedCount", "PendingRetries",
             "LastError", "LastIngestedScan", "SciCatReachable", "CurrentMeasurement")
_SPECTRUM_LENGTH = 4096


class SciCatIngestor(Device):
    """Watches beamtime directories and ingests the listed scans into SciCat.

    A Tango front end of the scingestor service: the same YAML configuration as
    the ``scicat_dataset_ingestor`` daemon, status as attributes with change
    events, measurements and re-ingestion as commands.
    """

    # -- device properties ---------------------------------------------------------------------
    ConfigFile = device_property(
        dtype=str, default_value="",
        doc="Path of the scingestor YAML configuration (the daemon's -c file); '~' is "
            "expanded. Required: empty puts the device in FAULT.",
    )
    AutoStart = device_property(
        dtype=bool, default_value=True,
        doc="Start watching when the device initialises (default true); false leaves "
            "the device OFF until the Start command.",
    )
    LogLevel = device_property(
        dtype=str, default_value="info",
        doc="Python log level of the ingestor: debug, info, warning, error or critical "
            "(default info).",
    )
    LogFile = device_property(
        dtype=str, default_value="",
        doc="Write the ingestor log (with timestamps) to this file, rotated at start-up "
            "with 5 backups; empty (default) logs to stderr.",
    )

    _logging_installed: Optional[Tuple[str, str]] = None

    # -- life cycle ------------------------------------------------------------------------------
    def init_device(self) -> None:
        """Read the properties, load the configuration and (with AutoStart) start watching."""
        super().init_device()
        self._service: Optional[IngestorService] = None
        self._unsubscribe: Optional[Callable[[], None]] = None
        self._fault = ""
        self._warning = ""
        self._scandir = ""
        self._pushed: Dict[str, Any] = {}
        self._events: queue.Queue = queue.Queue()
        self.set_state(DevState.INIT)
        self.set_status("Initialising.")
        for name in ("State", "Status", "CurrentMeasurement", "ScanDir", "StatusReport",
                     *_SNAPSHOT_VALUES):
            self.set_change_event(name, True, False)
        for name in _ARCHIVED:
            self.set_archive_event(name, True, False)
        self._pump_stop = threading.Event()
        self._pump = threading.Thread(target=self._pump_events, daemon=True,
                                      name=f"tango-events-{self.get_name()}")
        self._pump.start()
        if self._configure_logging():
            cfg = self._load_config()
            if cfg is not None:
                self._install_service(cfg, start=self.AutoStart)
        self._refresh()

    def delete_device(self) -> None:
        """Stop the service (the entry in progress is finished, the state is on disk)."""
        self._pump_stop.set()
        self._remove_service()
        self._events.put(_STOP)
        self._pump.join(5.0)
        logger.info("SciCatIngestor %s: service stopped", self.get_name())
        super().delete_device()

    def _configure_logging(self) -> bool:
        level = (self.LogLevel or "info").strip().lower()
        log_file = os.path.expanduser((self.LogFile or "").strip())
        wanted = (level, log_file)
        if SciCatIngestor._logging_installed == wanted:
            return True
        try:
            setup_logging(level, log_file or None, timestamps=bool(log_file))
        except ValueError as exc:
            name = "LogLevel" if level not in LOG_LEVELS else "LogFile"
            self._fault = f"Bad {name} device property: {exc}"
            self.error_stream(self._fault)
            return False
        SciCatIngestor._logging_installed = wanted
        return True

    def _load_config(self) -> Optional[IngestorConfig]:
        """The configuration named by ConfigFile, or None with the device in FAULT."""
        try:
            cfg = self._read_config()
        except ConfigError as exc:
            self._fault = f"Configuration error: {exc}"
            logger.error("%s", self._fault)
            self.error_stream(self._fault)
            return None
        self._fault = ""
        return cfg

    def _read_config(self) -> IngestorConfig:
        path = os.path.expanduser((self.ConfigFile or "").strip())
        if not path:
            raise ConfigError("the ConfigFile device property is not set")
        cfg = load_config(path)
        if not cfg.beamtime_dirs and not cfg.beamtime_base_dir:
            raise ConfigError(f"{path}: neither beamtime_dirs nor beamtime_base_dir is set: "
                              "nothing to watch")
        return cfg

    def _install_service(self, cfg: IngestorConfig, start: bool) -> None:
        service = IngestorService(cfg)
        self._warning = service.credentials_problem()
        if self._warning:
            logger.error("%s: datasets cannot be sent until this is fixed", self._warning)
        self._unsubscribe = service.subscribe(lambda _snapshot: self._events.put(_REFRESH))
        self._service = service
        logger.info("SciCatIngestor %s: configuration %s loaded", self.get_name(), cfg.source)
        if start:
            self._start_service(service)

    def _start_service(self, service: IngestorService) -> None:
        """Start watching; an unexpected failure puts the device in FAULT, never kills it."""
        try:
            service.start()
        except Exception as exc:
            logger.exception("the ingestion service cannot start")
            self._fault = f"The ingestion service cannot start: {type(exc).__name__}: {exc}"
            try:
                service.stop()
            except Exception:
                logger.exception("stopping the failed service failed")

    def _remove_service(self) -> None:
        service, self._service = self._service, None
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if service is not None:
            service.stop()
        if unsubscribe is not None:
            unsubscribe()

    # -- state -----------------------------------------------------------------------------------
    def _snapshot(self) -> StatusSnapshot:
        service = self._service
        return service.status() if service is not None else StatusSnapshot()

    def _state_and_status(self) -> Tuple[DevState, str]:
        if self._fault:
            return DevState.FAULT, _sentence(self._fault)
        service = self._service
        if service is None:
            return DevState.INIT, "Initialising."
        snapshot = service.status()
        if snapshot.state is State.INIT and not service.running:
            return DevState.OFF, "Stopped: not watching; the Start command starts watching."
        text = _sentence(snapshot.status)
        if snapshot.reingest_progress:
            text += f" Re-ingesting {snapshot.reingest_progress}."
        if self._warning and snapshot.state is not State.FAULT:
            text += f" Warning: {_sentence(self._warning)}"
        return getattr(DevState, snapshot.state.name), text

    def dev_state(self) -> DevState:
        """The state computed from the service status (see docs/tango.md)."""
        state, status = self._state_and_status()
        self.set_state(state)
        self.set_status(status)
        return state

    def dev_status(self) -> str:
        """One readable sentence saying why the device is in its state."""
        state, status = self._state_and_status()
        self.set_state(state)
        self.set_status(status)
        return status

    # -- events ----------------------------------------------------------------------------------
    def _refresh(self) -> None:
        """Ask the pump thread to push whatever changed."""
        self._events.put(_REFRESH)

    def _pump_events(self) -> None:
        """Push the changed values, one batch per burst of notifications (own thread)."""
        with tango.EnsureOmniThread():
            while True:
                item = self._events.get()
                stop = item is _STOP
                while not stop:
                    try:
                        stop = self._events.get_nowait() is _STOP
                    except queue.Empty:
                        break
                if stop:
                    return
                if not self._server_ready():
                    continue
                try:
                    self._push_changes()
                except Exception:  # a failed push must not end the pump
                    logger.exception("pushing Tango events failed")

    def _server_ready(self) -> bool:
        """Wait while the server starts (pushing then breaks start-up); False when stopping."""
        util = tango.Util.instance()
        while util.is_svr_starting():
            if self._pump_stop.wait(0.05):
                return False
        return not util.is_svr_shutting_down() and not self._pump_stop.is_set()

    def _current_values(self) -> Dict[str, Any]:
        snapshot = self._snapshot()
        values = {name: value(snapshot) for name, value in _SNAPSHOT_VALUES.items()}
        state, status = self._state_and_status()
        values["State"] = state
        values["Status"] = status
        values["ScanDir"] = self._scandir
        values["CurrentMeasurement"] = self._measurement_in(snapshot)
        values["StatusReport"] = self._report(snapshot, state, status)
        return values

    def _push_changes(self) -> None:
        for name, value in self._current_values().items():
            if name in self._pushed and self._pushed[name] == value:
                continue
            self._pushed[name] = value
            if name == "State":  # Tango sends the device's own state, so set it first
                self.set_state(value)
            elif name == "Status":
                self.set_status(value)
            self.push_change_event(name, value)
            if name in _ARCHIVED:
                self.push_archive_event(name, value)

    def _measurement_in(self, snapshot: StatusSnapshot) -> str:
        service = self._service
        if not self._scandir or service is None:
            return snapshot.current_measurement
        try:
            scanpath = service.context_for(self._scandir).scanpath
        except ServiceError:
            return ""
        return snapshot.current_measurements.get(scanpath, "")

    def _report(self, snapshot: StatusSnapshot, state: DevState, status: str) -> str:
        data = snapshot.to_dict()
        data.update(
            state=str(state),
            status=status,
            service_state=snapshot.state.value,
            service_status=snapshot.status,
            current_measurement=self._measurement_in(snapshot),
            last_error_time_iso=_iso_time(snapshot.last_error_time),
            scan_dir=self._scandir,
            config_file=(self.ConfigFile or "").strip(),
            fault=self._fault,
            warning=self._warning,
        )
        return json.dumps(data, sort_keys=True)

    def _value(self, name: str) -> Any:
        return _SNAPSHOT_VALUES[name](self._snapshot())

    # -- attributes ------------------------------------------------------------------------------
    @attribute(dtype=str, label="Current measurement",
               doc="Measurement open in the ScanDir directory (or, when ScanDir is empty, in "
                   "the most recently active scan directory); empty when none is open.")
    def CurrentMeasurement(self) -> str:
        return self._measurement_in(self._snapshot())

    @attribute(dtype=(str,), max_dim_x=_SPECTRUM_LENGTH, label="Current measurements",
               doc="Every scan directory with an open measurement, one 'scandir: name' "
                   "string each, sorted by directory.")
    def CurrentMeasurements(self) -> List[str]:
        return list(self._value("CurrentMeasurements"))

    @attribute(dtype=str, access=AttrWriteType.READ_WRITE, memorized=True, hw_memorized=True,
               label="Scan directory",
               doc="Scan directory the measurement and Reingest commands act on (absolute "
                   "path, real or core form); empty = the most recently active one.")
    def ScanDir(self) -> str:
        return self._scandir

    @ScanDir.write
    def ScanDir(self, value: str) -> None:
        value = value.strip()
        if value and not os.path.isabs(value):
            _throw(BAD_ARGUMENT, f"ScanDir must be an absolute path or empty, not {value!r}",
                   "ScanDir")
        self._scandir = os.path.normpath(value) if value else ""
        self._refresh()

    @attribute(dtype=str, label="Current scan directory",
               doc="The most recently active scan directory (where the last list change was).")
    def CurrentScanDir(self) -> str:
        return self._value("CurrentScanDir")

    @attribute(dtype=int, label="Queue length", unit="scans", format="%d",
               doc="Entries of the dataset lists waiting to be ingested.")
    def QueueLength(self) -> int:
        return self._value("QueueLength")

    @attribute(dtype=str, label="Last error",
               doc="The last ingestion or SciCat error (empty when none happened).")
    def LastError(self) -> str:
        return self._value("LastError")

    @attribute(dtype=str, label="Last error time",
               doc="When LastError happened, ISO 8601 local time with UTC offset "
                   "(e.g. 2024-03-05T10:00:00+01:00); empty when none happened.")
    def LastErrorTime(self) -> str:
        return self._value("LastErrorTime")

    @attribute(dtype=int, label="Ingested datasets", unit="datasets", format="%d",
               doc="Datasets ingested since the service started.")
    def IngestedCount(self) -> int:
        return self._value("IngestedCount")

    @attribute(dtype=int, label="Failed ingestions", unit="datasets", format="%d",
               doc="Failed ingestion attempts since the service started.")
    def FailedCount(self) -> int:
        return self._value("FailedCount")

    @attribute(dtype=int, label="Pending retries", unit="scans", format="%d",
               doc="Failed scans waiting to be retried.")
    def PendingRetries(self) -> int:
        return self._value("PendingRetries")

    @attribute(dtype=str, label="Last ingested scan",
               doc="Name of the scan (or measurement) ingested last.")
    def LastIngestedScan(self) -> str:
        return self._value("LastIngestedScan")

    @attribute(dtype=(str,), max_dim_x=_SPECTRUM_LENGTH, label="Watched beamtimes",
               doc="The beamtimes being watched.")
    def WatchedBeamtimes(self) -> List[str]:
        return list(self._value("WatchedBeamtimes"))

    @attribute(dtype=int, label="Watched scan directories", unit="dirs", format="%d",
               doc="Number of scan directories being watched.")
    def WatchedScanDirCount(self) -> int:
        return self._value("WatchedScanDirCount")

    @attribute(dtype=str, label="Watch mode", display_level=DispLevel.EXPERT,
               doc="How directories are watched: inotify or polling.")
    def WatchMode(self) -> str:
        return self._value("WatchMode")

    @attribute(dtype=bool, label="SciCat reachable",
               doc="True when the last request to SciCat got an answer.")
    def SciCatReachable(self) -> bool:
        return self._value("SciCatReachable")

    @attribute(dtype=str, label="SciCat URL", doc="The SciCat API root (scicat_url).")
    def SciCatUrl(self) -> str:
        return self._value("SciCatUrl")

    @attribute(dtype=str, label="Re-ingestion progress",
               doc="'n/total list-file' while a Reingest of a whole beamtime runs; empty "
                   "otherwise.")
    def ReingestProgress(self) -> str:
        return self._value("ReingestProgress")

    @attribute(dtype=str, label="Status report (JSON)", display_level=DispLevel.EXPERT,
               doc="Everything above as one JSON object, for scripts (keys of the core "
                   "status snapshot plus state, status, scan_dir, config_file, fault, warning).")
    def StatusReport(self) -> str:
        state, status = self._state_and_status()
        return self._report(self._snapshot(), state, status)

    # -- commands --------------------------------------------------------------------------------
    def _call(self, origin: str, action: Callable[[IngestorService], _T]) -> _T:
        service = self._service
        if service is None:
            _throw(NOT_CONFIGURED, f"{origin} is not possible: {self._fault or 'no service'}",
                   origin)
        try:
            result = action(service)
        except ServiceError as exc:
            _throw(BAD_ARGUMENT, f"{origin}: {exc}", origin)
        except OSError as exc:
            _throw(IO_ERROR, f"{origin}: {exc}", origin)
        self._refresh()
        return result

    @staticmethod
    def _in_args(origin: str, argin: Sequence[str], names: Sequence[str]) -> List[str]:
        """``[scandir, *names]`` of an ``...In`` command, checked (see docs/tango.md)."""
        values = list(argin)
        if len(values) != 1 + len(names):
            wanted = ", ".join(["scandir", *names])
            _throw(BAD_ARGUMENT, f"{origin} takes [{wanted}], got {len(values)} value(s)",
                   origin)
        scandir = values[0].strip()
        if not scandir or not os.path.isabs(scandir):
            _throw(BAD_ARGUMENT, f"{origin}: the scan directory must be an absolute path, "
                   f"not {values[0]!r}", origin)
        return [os.path.normpath(scandir), *values[1:]]

    # Every directory-dependent command has two forms: ``X(args)`` acting on the ScanDir
    # attribute (a default for people typing commands by hand) and ``XIn([scandir, args])``
    # with the directory as its first argument, for programs (macros, the panel), so that
    # two clients never race on ScanDir.

    @command(dtype_in=str, doc_in="measurement name (no spaces)",
             dtype_out=str, doc_out="the scan directory of the measurement")
    def StartMeasurement(self, name: str) -> str:
        """Close the open measurement (if any) of ScanDir and open ``name``."""
        return self._call("StartMeasurement",
                          lambda service: service.start_measurement(name, self._scandir))

    @command(dtype_in=(str,), doc_in="[scandir, name]",
             dtype_out=str, doc_out="the scan directory of the measurement")
    def StartMeasurementIn(self, argin: Sequence[str]) -> str:
        """StartMeasurement in the scan directory given: ``[scandir, name]``."""
        scandir, name = self._in_args("StartMeasurementIn", argin, ["name"])
        return self._call("StartMeasurementIn",
                          lambda service: service.start_measurement(name, scandir))

    @command(dtype_in=(str,), doc_in="[name, scandir] (older form of StartMeasurementIn)",
             dtype_out=str, doc_out="the scan directory of the measurement")
    def StartMeasurementInDir(self, argin: Sequence[str]) -> str:
        """Open a measurement in a given scan directory: ``[name, scandir]``.

        The older form of ``StartMeasurementIn`` (arguments the other way round), kept
        for existing scripts.
        """
        if len(argin) != 2:
            _throw(BAD_ARGUMENT, "StartMeasurementInDir takes [name, scandir], got "
                   f"{len(argin)} value(s)", "StartMeasurementInDir")
        name, scandir = argin
        scandir, name = self._in_args("StartMeasurementInDir", [scandir, name], ["name"])
        return self._call("StartMeasurementInDir",
                          lambda service: service.start_measurement(name, scandir))

    @command(dtype_out=str, doc_out="name of the measurement stopped ('' when none was open)")
    def StopMeasurement(self) -> str:
        """Close the open measurement of ScanDir and ask for its dataset."""
        return self._call("StopMeasurement",
                          lambda service: service.stop_measurement(self._scandir))

    @command(dtype_in=(str,), doc_in="[scandir]",
             dtype_out=str, doc_out="name of the measurement stopped ('' when none was open)")
    def StopMeasurementIn(self, argin: Sequence[str]) -> str:
        """StopMeasurement in the scan directory given: ``[scandir]``."""
        (scandir,) = self._in_args("StopMeasurementIn", argin, [])
        return self._call("StopMeasurementIn",
                          lambda service: service.stop_measurement(scandir))

    @command(dtype_out=str, doc_out="name of the measurement updated")
    def UpdateMeasurement(self) -> str:
        """Send the open measurement's dataset of ScanDir now and keep it open."""
        return self._call("UpdateMeasurement",
                          lambda service: service.update_measurement(self._scandir))

    @command(dtype_in=(str,), doc_in="[scandir]", dtype_out=str,
             doc_out="name of the measurement updated")
    def UpdateMeasurementIn(self, argin: Sequence[str]) -> str:
        """UpdateMeasurement in the scan directory given: ``[scandir]``."""
        (scandir,) = self._in_args("UpdateMeasurementIn", argin, [])
        return self._call("UpdateMeasurementIn",
                          lambda service: service.update_measurement(scandir))

    @command(dtype_in=str, doc_in="measurement name (no spaces)",
             dtype_out=str, doc_out="the scan directory of the measurement")
    def MakeMeasurement(self, name: str) -> str:
        """Start measurement ``name`` in ScanDir and add the last listed scan to it."""
        return self._call("MakeMeasurement",
                          lambda service: service.make_measurement(name, self._scandir))

    @command(dtype_in=(str,), doc_in="[scandir, name]",
             dtype_out=str, doc_out="the scan directory of the measurement")
    def MakeMeasurementIn(self, argin: Sequence[str]) -> str:
        """MakeMeasurement in the scan directory given: ``[scandir, name]``."""
        scandir, name = self._in_args("MakeMeasurementIn", argin, ["name"])
        return self._call("MakeMeasurementIn",
                          lambda service: service.make_measurement(name, scandir))

    @command(dtype_in=(str,), doc_in="[scandir]", dtype_out=str,
             doc_out="the measurement open in the scan directory ('' when none)")
    def CurrentMeasurementIn(self, argin: Sequence[str]) -> str:
        """The measurement open in the scan directory given, replayed from its list."""
        (scandir,) = self._in_args("CurrentMeasurementIn", argin, [])
        return self._call("CurrentMeasurementIn",
                          lambda service: service.current_measurement(scandir))

    @command(dtype_in=str, doc_in="scan name; empty = every scan of the beamtime",
             dtype_out=str, doc_out="the scan, or the beamtime id for a whole beamtime")
    def Reingest(self, scan: str) -> str:
        """Re-ingest one scan of ScanDir, or (empty) the whole beamtime in the background."""
        return self._call("Reingest",
                          lambda service: service.reingest(scan.strip(), self._scandir))

    @command(dtype_in=(str,), doc_in="[scandir, scan]; empty scan = the whole beamtime",
             dtype_out=str, doc_out="the scan, or the beamtime id for a whole beamtime")
    def ReingestIn(self, argin: Sequence[str]) -> str:
        """Reingest in the scan directory given: ``[scandir, scan]``."""
        scandir, scan = self._in_args("ReingestIn", argin, ["scan"])
        return self._call("ReingestIn",
                          lambda service: service.reingest(scan.strip(), scandir))

    @command
    def Start(self) -> None:
        """Start watching and ingesting (state leaves OFF)."""
        if self._service is None:
            _throw(CONFIG_ERROR, f"Start is not possible: {self._fault or 'no configuration'}",
                   "Start")
        self._fault = ""
        self._call("Start", self._start_service)
        if self._fault:
            _throw(NOT_CONFIGURED, self._fault, "Start")
        logger.info("SciCatIngestor %s: watching started", self.get_name())

    @command
    def Stop(self) -> None:
        """Stop watching and ingesting (state OFF); the entry in progress is finished."""
        self._call("Stop", lambda service: service.stop())
        logger.info("SciCatIngestor %s: watching stopped", self.get_name())

    @command
    def ReloadConfiguration(self) -> None:
        """Re-read the device properties and the YAML file and restart the service.

        An invalid file raises ``SciCatIngestor_ConfigError``; a running service is then
        left untouched, a device without one stays in FAULT.
        """
        self.get_device_properties(self.get_device_class())
        if not self._configure_logging():
            self._refresh()
            _throw(CONFIG_ERROR, self._fault, "ReloadConfiguration")
        try:
            cfg = self._read_config()
        except ConfigError as exc:
            if self._service is None:
                self._fault = f"Configuration error: {exc}"
                self._refresh()
            logger.error("ReloadConfiguration: %s", exc)
            _throw(CONFIG_ERROR, f"Configuration error: {exc}", "ReloadConfiguration")
        start = self._service.running if self._service is not None else self.AutoStart
        self._remove_service()
        self._fault = ""
        self._install_service(cfg, start=start)
        self._refresh()


def main(args: Optional[Sequence[str]] = None) -> None:
    """Run the ``SciCatIngestor`` device server (``SciCatIngestor <instance> [options]``).

    ``args[0]`` is reduced to the executable's base name (as Tango itself names the
    server), so ``-?`` lists the instances also when started by full path or with
    ``python -m``.
    """
    argv = list(sys.argv if args is None else args) or ["SciCatIngestor"]
    argv[0] = os.path.splitext(os.path.basename(argv[0]))[0] or "SciCatIngestor"
    run((SciCatIngestor,), args=argv)


if __name__ == "__main__":
    main()
