"""A real Tango database and Sardana server for the macro tests.

:class:`SardanaEnv` starts PyTango's SQLite ``DataBaseds`` on a free loopback
port, registers one ``Sardana`` server (Pool + MacroServer + Door) with the
scingestor macros on its ``MacroPath``, starts it, and creates a dummy motor,
a dummy counter/timer and a measurement group.  Every process runs in its own
process group and :meth:`SardanaEnv.stop` kills the groups.

Macros run through the Door's ``RunMacro`` command; the Door's log attributes
are followed with change events so that the macro messages can be checked.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import tango
from lxml import etree
from taurus.core.util.codecs import CodecFactory

logger = logging.getLogger(__name__)

INSTANCE = "scitest"
POOL = "pool/scitest/1"
MACROSERVER = "macroserver/scitest/1"
DOOR = "door/scitest/1"
LOG_ATTRIBUTES = ("Output", "Info", "Warning", "Error")
DONE_STATES = ("finish", "stop", "abort", "exception")


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(predicate: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last: Optional[BaseException] = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except Exception as exc:  # noqa: BLE001 - keep polling until the deadline
            last = exc
            value = None
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"{what} not ready within {timeout} s (last error: {last})")


@dataclass
class MacroRun:
    """Outcome of one macro run: final status and the Door log lines by level."""

    macro: List[str]
    status: str
    logs: Dict[str, List[str]] = field(default_factory=dict)

    @property
    def output(self) -> List[str]:
        """Lines of the Output log."""
        return self.logs.get("Output", [])

    @property
    def errors(self) -> List[str]:
        """Lines of the Error log."""
        return self.logs.get("Error", [])

    @property
    def warnings(self) -> List[str]:
        """Lines of the Warning log."""
        return self.logs.get("Warning", [])

    def text(self) -> str:
        """All log lines joined (for assertion messages)."""
        return "\n".join(f"{k}: {line}" for k, lines in self.logs.items() for line in lines)


class SardanaEnv:
    """Tango database + one Sardana server, loopback only, started in ``workdir``."""

    def __init__(self, workdir: str, macro_path: Sequence[str],
                 extra_servers: Sequence[tuple] = ()) -> None:
        self.workdir = workdir
        self.macro_path = list(macro_path)
        self.port = free_port()
        self.tango_host = f"127.0.0.1:{self.port}"
        self.procs: List[subprocess.Popen] = []
        self._logs: Dict[str, List[str]] = {name: [] for name in LOG_ATTRIBUTES}
        self._status: Dict[str, str] = {}
        self._lock = threading.Lock()
        self._event_ids: List[int] = []
        self.door: Optional[tango.DeviceProxy] = None
        self.macroserver: Optional[tango.DeviceProxy] = None
        self.db: Optional[tango.Database] = None

    # ------------------------------------------------------------- processes
    def full_name(self, device: str) -> str:
        """The fully qualified Tango name of ``device`` in this database."""
        return f"tango://{self.tango_host}/{device}"

    def child_env(self) -> Dict[str, str]:
        """Environment for child processes (TANGO_HOST of this database)."""
        env = dict(os.environ)
        env["TANGO_HOST"] = self.tango_host
        env.pop("ORBendPoint", None)
        return env

    def spawn(self, argv: Sequence[str], log_name: str) -> subprocess.Popen:
        """Start ``argv`` in its own process group; output goes to ``workdir/log_name``."""
        log = open(os.path.join(self.workdir, log_name), "wb")  # noqa: SIM115
        try:
            proc = subprocess.Popen(list(argv), cwd=self.workdir, env=self.child_env(),
                                    stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            log.close()
        self.procs.append(proc)
        return proc

    def start(self, timeout: float = 120.0) -> None:
        """Start the database and the Sardana server and create the test elements."""
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> None:
        self.spawn([sys.executable, "-m", "tango.databaseds.database", "2"], "databaseds.log")
        _wait(lambda: tango.DeviceProxy(self.full_name("sys/database/2")).ping() >= 0,
              timeout, "Tango database")
        self.db = tango.Database("127.0.0.1", self.port)
        server = f"Sardana/{INSTANCE}"
        devices = [(POOL, "Pool"), (MACROSERVER, "MacroServer"), (DOOR, "Door")]
        infos = []
        for name, klass in devices:
            info = tango.DbDevInfo()
            info.name, info._class, info.server = name, klass, server
            infos.append(info)
        self.db.add_server(server, infos, with_dserver=True)
        self.db.put_device_property(MACROSERVER, {
            "PoolNames": [POOL],
            "MacroPath": self.macro_path,
            "EnvironmentDb": [os.path.join(self.workdir, "macroserver.env")],
        })
        self.db.put_device_property(DOOR, {"MacroServerName": [MACROSERVER]})
        sardana = os.path.join(os.path.dirname(sys.executable), "Sardana")
        self.spawn([sardana, INSTANCE, "-ORBendPoint", "giop:tcp:127.0.0.1:"],
                   "sardana.log")
        door = tango.DeviceProxy(self.full_name(DOOR))
        _wait(lambda: door.state() == tango.DevState.ON, timeout, "Sardana door")
        self.door = door
        self.door.set_timeout_millis(30000)
        self.macroserver = tango.DeviceProxy(self.full_name(MACROSERVER))
        self._subscribe()
        for macro in (["defctrl", "DummyMotorController", "motctrl01"],
                      ["defelem", "mot01", "motctrl01", "1"],
                      ["defctrl", "DummyCounterTimerController", "ctctrl01"],
                      ["defelem", "ct01", "ctctrl01", "1"],
                      ["defmeas", "mntgrp01", "ct01"]):
            run = self.run_macro(macro)
            if run.status != "finish":
                raise RuntimeError(f"{' '.join(macro)} failed: {run.status}\n{run.text()}")
        self.set_env(ActiveMntGrp="mntgrp01")

    def register_server(self, server: str, klass: str, device: str,
                        properties: Dict[str, Sequence[str]]) -> None:
        """Register a further device server (e.g. the SciCatIngestor device)."""
        assert self.db is not None
        info = tango.DbDevInfo()
        info.name, info._class, info.server = device, klass, server
        self.db.add_server(server, [info], with_dserver=True)
        if properties:
            self.db.put_device_property(device, dict(properties))

    def stop(self) -> None:
        """Unsubscribe and kill every process group started here."""
        if self.door is not None:
            for event_id in self._event_ids:
                try:
                    self.door.unsubscribe_event(event_id)
                except tango.DevFailed:
                    pass
            self._event_ids = []
        for proc in reversed(self.procs):
            self.kill(proc)
        self.procs = []

    def kill(self, proc: subprocess.Popen) -> None:
        """Terminate ``proc``'s process group (SIGTERM, then SIGKILL)."""
        if proc.poll() is None:
            for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(grace)
                    break
                except subprocess.TimeoutExpired:
                    continue
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    # ---------------------------------------------------------------- events
    def _subscribe(self) -> None:
        assert self.door is not None
        for attr in LOG_ATTRIBUTES:
            self._event_ids.append(self.door.subscribe_event(
                attr, tango.EventType.CHANGE_EVENT, self._log_callback(attr)))
        self._event_ids.append(self.door.subscribe_event(
            "MacroStatus", tango.EventType.CHANGE_EVENT, self._on_status))

    def _log_callback(self, attr: str) -> Any:
        def push(event: tango.EventData) -> None:
            if event.err or event.attr_value is None or event.attr_value.value is None:
                return
            with self._lock:
                self._logs[attr].extend(str(line) for line in event.attr_value.value)
        return push

    def _on_status(self, event: tango.EventData) -> None:
        if event.err or event.attr_value is None:
            return
        value = event.attr_value.value
        if not value or not len(value[1]):
            return
        _, data = CodecFactory().getCodec(value[0]).decode(value)
        with self._lock:
            for status in data:
                self._status[str(status.get("id"))] = status.get("state", "")

    # ---------------------------------------------------------------- macros
    def run_macro(self, macro: Sequence[str], timeout: float = 120.0) -> MacroRun:
        """Run ``macro`` (name and string parameters) and wait until the Door is ready."""
        assert self.door is not None
        with self._lock:
            marks = {attr: len(lines) for attr, lines in self._logs.items()}
            self._status.clear()
        xml = etree.fromstring(self.door.RunMacro(list(macro))[0])
        node = xml if xml.tag == "macro" else xml.find("macro")
        macro_id = node.get("id")

        def done() -> bool:
            with self._lock:
                state = self._status.get(macro_id, "")
            return state in DONE_STATES and self.door.state() != tango.DevState.RUNNING

        _wait(done, timeout, f"macro {' '.join(macro)}", interval=0.05)
        with self._lock:
            status = self._status[macro_id]
        # the log events travel on the same event channel before the final status;
        # give the client-side dispatch a short moment to hand over the rest
        time.sleep(0.2)
        with self._lock:
            logs = {attr: list(self._logs[attr][marks[attr]:]) for attr in LOG_ATTRIBUTES}
        return MacroRun(list(macro), status, logs)

    # ----------------------------------------------------------- environment
    def get_env(self) -> Dict[str, Any]:
        """The whole MacroServer environment as a dict."""
        assert self.macroserver is not None
        value = self.macroserver.read_attribute("Environment").value
        _, data = CodecFactory().getCodec("pickle").decode(value)
        return dict(data.get("new", {}))

    def set_env(self, **values: Any) -> None:
        """Set MacroServer environment variables to Python values."""
        self._change_env({"new": values})

    def del_env(self, *names: str) -> None:
        """Delete MacroServer environment variables (missing names are ignored)."""
        present = [name for name in names if name in self.get_env()]
        if present:
            self._change_env({"del": present})

    def _change_env(self, change: Dict[str, Any]) -> None:
        assert self.macroserver is not None
        data = CodecFactory().getCodec("pickle").encode(("", change))
        self.macroserver.write_attribute("Environment", data)
