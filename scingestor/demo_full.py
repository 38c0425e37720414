"""``scingestor-demo --full``: the beamline experience, Tango and Sardana included.

Starts, all on 127.0.0.1 and below one working directory:

* the SciCat-compatible development server (in this process),
* a demo beamtime (``BeamtimeFactory``) and a scingestor configuration for it,
* PyTango's SQLite Tango database,
* a ``Sardana`` server (Pool, MacroServer, Door) with a dummy motor ``mot01``,
  a dummy counter/timer ``ct01`` and the measurement group ``mntgrp01``; the
  scingestor macros on ``MacroPath`` and the ``scicat_post_scan`` hook,
* the ``SciCatIngestor`` device server (``ConfigFile`` = the generated
  configuration), which the macros talk to through ``SciCatIngestorDevice``.

Then it runs a short session through the Door (``start_measurement demo_calib``,
two ``ascan``s writing ``.h5`` and ``.fio`` files into the beamtime's scan
directory, ``stop_measurement``), waits for the datasets, prints what arrived in
the catalogue and the device's attributes, and stops every process it started.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Callable, Dict, Iterator, List, Optional

from .testing import BeamtimeFactory, DevServerHandle, start_dev_server
from .testing.setup import write_config

logger = logging.getLogger(__name__)

#: Tango names used by the demo.
SARDANA_INSTANCE = "scidemo"
POOL = "pool/scidemo/1"
MACROSERVER = "macroserver/scidemo/1"
DOOR = "door/scidemo/1"
INGESTOR_SERVER = "SciCatIngestor/demo"
INGESTOR_DEVICE = "p00/scicatingestor/demo"
MEASUREMENT = "demo_calib"
SCAN_FILES = ["demo.h5", "demo.fio"]
ASCAN = ["ascan", "mot01", "0", "1", "10", "0.01"]
DEVICE_ATTRIBUTES = ("State", "Status", "IngestedCount", "LastIngestedScan",
                     "CurrentMeasurement", "QueueLength")
#: Seconds to wait for the datasets to arrive in the catalogue.
ARRIVAL_TIMEOUT = 120.0


def _print(text: str = "") -> None:
    sys.stdout.write(text.rstrip() + "\n")
    sys.stdout.flush()


class Interrupted(Exception):
    """SIGTERM arrived: unwind and clean up like Ctrl-C."""


@dataclass
class FullDemoResult:
    """What the session produced: scan names, the measurement pid and the outcome."""

    scans: List[str] = field(default_factory=list)
    measurement_pid: str = ""
    arrived: bool = False


def _on_sigterm(signum: int, frame: Optional[FrameType]) -> None:
    raise Interrupted(f"signal {signum}")


def _ignore_signals() -> Dict[int, Any]:
    """Ignore SIGINT and SIGTERM (while cleaning up); returns the previous handlers."""
    return {signum: signal.signal(signum, signal.SIG_IGN)
            for signum in (signal.SIGINT, signal.SIGTERM)}


def _wait(predicate: Callable[[], Any], timeout: float, interval: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


def _file_count(server: DevServerHandle, pid: str) -> int:
    return sum(len(block.get("dataFileList", [])) for block in server.datablocks(pid))


def _input_datasets(doc: Dict[str, Any]) -> List[str]:
    value = doc.get("inputDatasets") or (doc.get("scientificMetadata") or {}).get(
        "inputDatasets") or []
    return [str(item) for item in value] if isinstance(value, (list, tuple)) else [str(value)]


def _door_lines(run: Any) -> Iterator[str]:
    for level in ("Output", "Warning", "Error"):
        for line in run.logs.get(level, []):
            for part in str(line).splitlines():
                if part.strip():
                    yield part if level == "Output" else f"{level.upper()}: {part}"


def run_full_demo(workdir: str, keep_workdir: bool = True) -> int:
    """Run the full demo in ``workdir``; returns 0 when the scans and the measurement arrived.

    ``keep_workdir`` only changes what is printed about the logs (the caller
    removes a temporary ``workdir``).

    Every process started here is stopped before returning, also on an error,
    on Ctrl-C and on SIGTERM (both give 130).
    """
    try:
        from .testing.sardana_env import SardanaEnv, sardana_executable
    except ImportError as exc:
        _print(f"scingestor-demo --full needs PyTango, Taurus and Sardana ({exc}); "
               "install them with: pip install 'scingestor[tango]' sardana")
        return 1

    if not os.path.exists(sardana_executable()):
        _print(f"scingestor-demo --full needs the Sardana server: {sardana_executable()} "
               "not found (pip install sardana)")
        return 1
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main else None
    workdir = os.path.abspath(workdir)
    server: Optional[DevServerHandle] = None
    sardana: Optional[SardanaEnv] = None
    try:
        server = start_dev_server()
        sardana = SardanaEnv(os.path.join(workdir, "tango"), [_macro_path()],
                             instance=SARDANA_INSTANCE, pool=POOL, macroserver=MACROSERVER,
                             door=DOOR)
        result = _session(workdir, server, sardana, keep_workdir)
        return 0 if result.arrived else 1
    except (Interrupted, KeyboardInterrupt):
        _print("interrupted: stopping everything")
        return 130
    except Exception as exc:  # noqa: BLE001 - any failure: report it, clean up, exit 1
        _print(f"demo failed: {exc}")
        logger.debug("demo failed", exc_info=True)
        return 1
    finally:
        quiet = _ignore_signals() if in_main else {}
        try:
            if sardana is not None:
                sardana.stop()
            if server is not None:
                server.close()
        finally:
            for signum, handler in quiet.items():
                signal.signal(signum, handler)
            if in_main and previous is not None:
                signal.signal(signal.SIGTERM, previous)


def _macro_path() -> str:
    from sardana_macros import macro_path

    return macro_path()


def _session(workdir: str, server: DevServerHandle, sardana: Any,
             keep_workdir: bool) -> FullDemoResult:
    from .testing.tango_env import DeviceServer, wait_until

    result = FullDemoResult()
    _print(f"Working directory: {workdir}")
    _print(f"SciCat-compatible dev server: {server.url}")
    factory = BeamtimeFactory(workdir)
    scandir = factory.scandir
    with open(factory.list_path(), "a", encoding="utf-8"):
        pass  # an (empty) list file: the ingestor watches the scan directory from the start
    config = write_config(factory, server.url)
    _print(f"Demo beamtime {factory.beamtime_id}: {factory.beamtime_dir}")
    _print(f"Ingestor configuration: {config}")

    started = time.monotonic()
    sardana.start()
    _print(f"Tango database (SQLite): TANGO_HOST={sardana.tango_host}")
    _print(f"Sardana/{SARDANA_INSTANCE}: {POOL}, {MACROSERVER}, {DOOR}; "
           f"mot01, ct01, mntgrp01 ({time.monotonic() - started:.1f} s)")

    sardana.register_server(INGESTOR_SERVER, "SciCatIngestor", INGESTOR_DEVICE, {
        "ConfigFile": config,
        "AutoStart": True,
        "LogLevel": "info",
        "LogFile": os.path.join(sardana.workdir, "scingestor.log"),
    })
    ingestor = DeviceServer(
        sardana.tango, [sys.executable, "-m", "tango_ds.SciCatIngestor", "demo",
                        "-ORBendPoint", "giop:tcp:127.0.0.1:"],
        INGESTOR_DEVICE, "SciCatIngestor.log").start(60.0)
    proxy = ingestor.proxy
    wait_until(lambda: proxy.WatchedScanDirCount >= 1, 60.0, "SciCatIngestor watching")
    _print(f"{INGESTOR_SERVER}: {INGESTOR_DEVICE} {proxy.state()}, "
           f"ConfigFile={config}")

    hook = sardana.run_macro(["defgh", "scicat_post_scan", "post-scan"])
    if hook.status != "finish":
        raise RuntimeError(f"defgh scicat_post_scan failed: {hook.text()}")
    sardana.set_env(ScanDir=scandir, ScanFile=list(SCAN_FILES), AppendSciCatDataset=True,
                    BeamtimeFilePath=factory.beamtime_dir,
                    SciCatIngestorDevice=INGESTOR_DEVICE)
    _print(f"MacroServer environment: ScanDir={scandir} ScanFile={SCAN_FILES} "
           f"AppendSciCatDataset=True SciCatIngestorDevice={INGESTOR_DEVICE}")
    _print()
    _print("Session through the Door:")
    session_start = time.monotonic()
    session: List[List[str]] = [["start_measurement", MEASUREMENT], list(ASCAN), list(ASCAN),
                                ["stop_measurement"]]
    for macro in session:
        _print(f"{DOOR}> {' '.join(macro)}")
        run = sardana.run_macro(macro)
        lines = list(_door_lines(run))
        if macro[0] == "ascan":
            # the scan table in full is long: keep the header, the last point and our lines
            table = [line for line in lines if not line.startswith(("Appending", "WARNING",
                                                                    "ERROR"))]
            shown = table[:3] + (["  ..."] if len(table) > 4 else []) + table[-1:]
            lines = shown + [line for line in lines if line not in table]
            scan_id = int(sardana.get_env()["ScanID"])
            result.scans.append(f"demo_{scan_id:05d}")
        for line in lines:
            _print(f"  {line}")
        if run.status != "finish":
            raise RuntimeError(f"{' '.join(macro)} ended with '{run.status}': {run.text()}")

    bt = factory.beamtime_id
    result.measurement_pid = f"{bt}/{MEASUREMENT}"
    wanted = [f"{bt}/{name}" for name in result.scans] + [result.measurement_pid]
    _print()
    _print(f"Dataset list {factory.list_path()}:")
    with open(factory.list_path(), encoding="utf-8") as handle:
        for line in handle.read().split("\n"):
            if line.strip():
                _print(f"  {line}")

    def all_arrived() -> bool:
        pids = {doc["pid"] for doc in server.datasets()}
        return all(pid in pids for pid in wanted)

    result.arrived = _wait(all_arrived, ARRIVAL_TIMEOUT, interval=0.5)
    _wait(lambda: proxy.QueueLength == 0 and proxy.LastIngestedScan == MEASUREMENT, 20.0)
    _print()
    if result.arrived:
        _print("Datasets in the catalogue (all arrived "
               f"{time.monotonic() - session_start:.1f} s after the session started):")
    else:
        _print(f"Datasets in the catalogue (NOT all arrived within {ARRIVAL_TIMEOUT:.0f} s; "
               f"wanted {', '.join(wanted)}):")
    for doc in server.datasets():
        pid = doc["pid"]
        line = f"  {pid:24} {doc.get('type', ''):8} files={_file_count(server, pid):<3}"
        inputs = _input_datasets(doc) if doc.get("type") == "derived" else []
        if inputs:
            line += f" inputDatasets={', '.join(sorted(inputs))}"
        _print(line)
    _print()
    _print(f"SciCatIngestor device {INGESTOR_DEVICE}:")
    for name in DEVICE_ATTRIBUTES:
        value = proxy.read_attribute(name).value
        _print(f"  {name:18} {value!r}" if isinstance(value, str) else f"  {name:18} {value}")
    _print()
    if keep_workdir:
        _print(f"Logs (Tango database, Sardana, SciCatIngestor): {sardana.workdir}")
    else:
        _print("Stopping; the temporary directory is removed (keep it with --workdir DIR).")
    return result
