"""Tango device server ``SciCatIngestor``: the ingestion service behind a Tango interface.

The device owns one :class:`scingestor.service.IngestorService`. Attributes are read
from the service's status snapshot; a pump thread turns the service's status
notifications into Tango change (and archive) events, so clients such as Taurus
update without polling. The watched lists are asked from the service only when read
(or, for events, when the snapshot's ``watch_version`` changed). Commands call the
service; no ingestion logic lives here.

Start it like any PyTango server::

    SciCatIngestor <instance>                      # registered in the Tango database
    SciCatIngestor <instance> -nodb -port 10123 -dlist p00/scicatingestor/1
    python -m tango_ds.SciCatIngestor <instance>   # without the console script
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, TypeVar

from tango import AttrWriteType, DevState
from tango.server import Device, attribute, command, device_property, run

from scingestor.config import ConfigError, IngestorConfig
from scingestor.service import IngestorService, ServiceError
from scingestor.status import StatusSnapshot
from tango_ds.descriptions import PROPERTY_DOCS, described
from tango_ds.errors import (
    BAD_ARGUMENT,
    CONFIG_ERROR,
    IO_ERROR,
    NOT_CONFIGURED,
    scandir_args,
    throw,
)
from tango_ds.events import EventPump
from tango_ds.properties import install_logging, read_config
from tango_ds.recent import RECENT_ATTRIBUTES, RecentScansInterface
from tango_ds.values import (
    ARCHIVED,
    SNAPSHOT_VALUES,
    SPECTRUM_LENGTH,
    device_state,
    status_report,
)
from tango_ds.watched import WatchedListsInterface

__all__ = ["BAD_ARGUMENT", "CONFIG_ERROR", "IO_ERROR", "NOT_CONFIGURED", "SciCatIngestor", "main"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


class SciCatIngestor(RecentScansInterface, WatchedListsInterface, Device):
    """Watches beamtime directories and ingests the listed scans into SciCat.

    A Tango front end of the scingestor service: the same YAML configuration as
    the ``scicat_dataset_ingestor`` daemon, status as attributes with change
    events, measurements and re-ingestion as commands.
    """

    # -- device properties ---------------------------------------------------------------------
    ConfigFile = device_property(dtype=str, default_value="", doc=PROPERTY_DOCS["ConfigFile"])
    AutoStart = device_property(dtype=bool, default_value=True, doc=PROPERTY_DOCS["AutoStart"])
    LogLevel = device_property(dtype=str, default_value="info", doc=PROPERTY_DOCS["LogLevel"])
    LogFile = device_property(dtype=str, default_value="", doc=PROPERTY_DOCS["LogFile"])

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
        self._recent_cache: Dict[str, Any] = {}
        self._beamtimes_cache: Tuple[Any, Tuple[str, ...]] = (None, ())
        self.set_state(DevState.INIT)
        self.set_status("Initialising.")
        for name in ("State", "Status", "CurrentMeasurement", "ScanDir", "StatusReport",
                     "WatchedBeamtimes", *SNAPSHOT_VALUES, *RECENT_ATTRIBUTES):
            self.set_change_event(name, True, False)
        for name in ARCHIVED:
            self.set_archive_event(name, True, False)
        self._pump = EventPump(f"tango-events-{self.get_name()}", self._push_changes)
        self._pump.start()
        if self._configure_logging():
            cfg = self._load_config()
            if cfg is not None:
                self._install_service(cfg, start=self.AutoStart)
        self._refresh()

    def delete_device(self) -> None:
        """Stop the service (the entry in progress is finished, the state is on disk)."""
        self._pump.stop_pushing()
        self._remove_service()
        self._pump.close(5.0)
        logger.info("SciCatIngestor %s: service stopped", self.get_name())
        super().delete_device()

    def _configure_logging(self) -> bool:
        """Set up logging from LogLevel and LogFile; False with the device in FAULT."""
        fault = install_logging(self.LogLevel, self.LogFile)
        if fault:
            self._fault = fault
            self.error_stream(self._fault)
            return False
        return True

    def _load_config(self) -> Optional[IngestorConfig]:
        """The configuration named by ConfigFile, or None with the device in FAULT."""
        try:
            cfg = read_config(self.ConfigFile)
        except ConfigError as exc:
            self._fault = f"Configuration error: {exc}"
            logger.error("%s", self._fault)
            self.error_stream(self._fault)
            return None
        self._fault = ""
        return cfg

    def _install_service(self, cfg: IngestorConfig, start: bool) -> None:
        service = IngestorService(cfg)
        self._warning = service.credentials_problem()
        if self._warning:
            logger.error("%s: datasets cannot be sent until this is fixed", self._warning)
        self._unsubscribe = service.subscribe(lambda _snapshot: self._pump.refresh())
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
        service = self._service
        name, text = device_state(service.status() if service is not None else None,
                                  service is not None and service.running,
                                  self._fault, self._warning)
        return getattr(DevState, name), text

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
        self._pump.refresh()

    def _current_values(self) -> Dict[str, Any]:
        snapshot = self._snapshot()
        values = {name: value(snapshot) for name, value in SNAPSHOT_VALUES.items()}
        state, status = self._state_and_status()
        values["State"] = state
        values["Status"] = status
        values["ScanDir"] = self._scandir
        values["CurrentMeasurement"] = self._measurement_in(snapshot)
        values["StatusReport"] = self._report(snapshot, state, status)
        values["WatchedBeamtimes"] = self._watched_beamtimes(snapshot)
        values.update(self._recent_values(snapshot))
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
            if name in ARCHIVED:
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
        return status_report(
            snapshot,
            state=str(state),
            status=status,
            current_measurement=self._measurement_in(snapshot),
            scan_dir=self._scandir,
            config_file=(self.ConfigFile or "").strip(),
            fault=self._fault,
            warning=self._warning,
        )

    def _value(self, name: str) -> Any:
        return SNAPSHOT_VALUES[name](self._snapshot())

    # -- attributes ------------------------------------------------------------------------------
    @attribute(dtype=str, **described("CurrentMeasurement"))
    def CurrentMeasurement(self) -> str:
        return self._measurement_in(self._snapshot())

    @attribute(dtype=(str,), max_dim_x=SPECTRUM_LENGTH, **described("CurrentMeasurements"))
    def CurrentMeasurements(self) -> List[str]:
        return list(self._value("CurrentMeasurements"))

    @attribute(dtype=str, access=AttrWriteType.READ_WRITE, memorized=True, hw_memorized=True,
               **described("ScanDir"))
    def ScanDir(self) -> str:
        return self._scandir

    @ScanDir.write
    def ScanDir(self, value: str) -> None:
        value = value.strip()
        if value and not os.path.isabs(value):
            throw(BAD_ARGUMENT, f"ScanDir must be an absolute path or empty, not {value!r}",
                  "ScanDir")
        self._scandir = os.path.normpath(value) if value else ""
        self._refresh()

    @attribute(dtype=str, **described("CurrentScanDir"))
    def CurrentScanDir(self) -> str:
        return self._value("CurrentScanDir")

    @attribute(dtype=int, **described("QueueLength"))
    def QueueLength(self) -> int:
        return self._value("QueueLength")

    @attribute(dtype=str, **described("LastError"))
    def LastError(self) -> str:
        return self._value("LastError")

    @attribute(dtype=str, **described("LastErrorTime"))
    def LastErrorTime(self) -> str:
        return self._value("LastErrorTime")

    @attribute(dtype=int, **described("IngestedCount"))
    def IngestedCount(self) -> int:
        return self._value("IngestedCount")

    @attribute(dtype=int, **described("FailedCount"))
    def FailedCount(self) -> int:
        return self._value("FailedCount")

    @attribute(dtype=int, **described("PendingRetries"))
    def PendingRetries(self) -> int:
        return self._value("PendingRetries")

    @attribute(dtype=str, **described("LastIngestedScan"))
    def LastIngestedScan(self) -> str:
        return self._value("LastIngestedScan")

    @attribute(dtype=int, **described("WatchedScanDirCount"))
    def WatchedScanDirCount(self) -> int:
        return self._value("WatchedScanDirCount")

    @attribute(dtype=str, **described("WatchMode"))
    def WatchMode(self) -> str:
        return self._value("WatchMode")

    @attribute(dtype=bool, **described("SciCatReachable"))
    def SciCatReachable(self) -> bool:
        return self._value("SciCatReachable")

    @attribute(dtype=str, **described("SciCatUrl"))
    def SciCatUrl(self) -> str:
        return self._value("SciCatUrl")

    @attribute(dtype=str, **described("ReingestProgress"))
    def ReingestProgress(self) -> str:
        return self._value("ReingestProgress")

    @attribute(dtype=str, **described("StatusReport"))
    def StatusReport(self) -> str:
        state, status = self._state_and_status()
        return self._report(self._snapshot(), state, status)

    # -- commands --------------------------------------------------------------------------------
    def _call(self, origin: str, action: Callable[[IngestorService], _T]) -> _T:
        service = self._service
        if service is None:
            throw(NOT_CONFIGURED, f"{origin} is not possible: {self._fault or 'no service'}",
                  origin)
        try:
            result = action(service)
        except ServiceError as exc:
            throw(BAD_ARGUMENT, f"{origin}: {exc}", origin)
        except OSError as exc:
            throw(IO_ERROR, f"{origin}: {exc}", origin)
        self._refresh()
        return result

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
        scandir, name = scandir_args("StartMeasurementIn", argin, ["name"])
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
            throw(BAD_ARGUMENT, "StartMeasurementInDir takes [name, scandir], got "
                  f"{len(argin)} value(s)", "StartMeasurementInDir")
        name, scandir = argin
        scandir, name = scandir_args("StartMeasurementInDir", [scandir, name], ["name"])
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
        (scandir,) = scandir_args("StopMeasurementIn", argin, [])
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
        (scandir,) = scandir_args("UpdateMeasurementIn", argin, [])
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
        scandir, name = scandir_args("MakeMeasurementIn", argin, ["name"])
        return self._call("MakeMeasurementIn",
                          lambda service: service.make_measurement(name, scandir))

    @command(dtype_in=(str,), doc_in="[scandir]", dtype_out=str,
             doc_out="the measurement open in the scan directory ('' when none)")
    def CurrentMeasurementIn(self, argin: Sequence[str]) -> str:
        """The measurement open in the scan directory given, replayed from its list."""
        (scandir,) = scandir_args("CurrentMeasurementIn", argin, [])
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
        scandir, scan = scandir_args("ReingestIn", argin, ["scan"])
        return self._call("ReingestIn",
                          lambda service: service.reingest(scan.strip(), scandir))

    @command
    def Start(self) -> None:
        """Start watching and ingesting (state leaves OFF)."""
        if self._service is None:
            throw(CONFIG_ERROR, f"Start is not possible: {self._fault or 'no configuration'}",
                  "Start")
        self._fault = ""
        self._call("Start", self._start_service)
        if self._fault:
            throw(NOT_CONFIGURED, self._fault, "Start")
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
            throw(CONFIG_ERROR, self._fault, "ReloadConfiguration")
        try:
            cfg = read_config(self.ConfigFile)
        except ConfigError as exc:
            if self._service is None:
                self._fault = f"Configuration error: {exc}"
                self._refresh()
            logger.error("ReloadConfiguration: %s", exc)
            throw(CONFIG_ERROR, f"Configuration error: {exc}", "ReloadConfiguration")
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
