"""A real Tango database and Sardana server with dummy elements, loopback only.

:class:`SardanaEnv` starts PyTango's SQLite database (:class:`TangoDatabase`),
registers one ``Sardana`` server (Pool + MacroServer + Door) with the given
macro directories on the MacroServer's ``MacroPath``, starts it, and creates a
dummy motor (``mot01``), a dummy counter/timer (``ct01``) and a measurement
group (``mntgrp01``, the ``ActiveMntGrp``). Every process runs in its own
process group and :meth:`SardanaEnv.stop` ends the groups.

Macros run through the Door's ``RunMacro`` command (:meth:`SardanaEnv.run_macro`);
the Door's log attributes and ``MacroStatus`` are followed with change events,
so a run returns the macro's final state and its output lines by level.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

import tango
from lxml import etree
from taurus.core.util.codecs import CodecFactory

from .tango_env import TangoDatabase, free_port, kill_process_group, wait_until

logger = logging.getLogger(__name__)

INSTANCE = "scitest"
POOL = "pool/scitest/1"
MACROSERVER = "macroserver/scitest/1"
DOOR = "door/scitest/1"
LOG_ATTRIBUTES = ("Output", "Info", "Warning", "Error")
DONE_STATES = ("finish", "stop", "abort", "exception")
#: Macros creating the dummy elements, run once the Door is ON.
ELEMENT_MACROS = (
    ("defctrl", "DummyMotorController", "motctrl01"),
    ("defelem", "mot01", "motctrl01", "1"),
    ("defctrl", "DummyCounterTimerController", "ctctrl01"),
    ("defelem", "ct01", "ctctrl01", "1"),
    ("defmeas", "mntgrp01", "ct01"),
)

__all__ = ["DOOR", "INSTANCE", "MACROSERVER", "POOL", "MacroRun", "SardanaEnv",
           "free_port", "sardana_executable"]


def sardana_executable() -> str:
    """The ``Sardana`` server executable next to this Python interpreter."""
    return os.path.join(os.path.dirname(sys.executable), "Sardana")


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
    """Tango database + one Sardana server, loopback only, started in ``workdir``.

    ``instance`` and the three device names default to the test names
    (``Sardana/scitest``, ``pool/scitest/1``, ...).
    """

    def __init__(self, workdir: str, macro_path: Sequence[str],
                 extra_servers: Sequence[tuple] = (), instance: str = INSTANCE,
                 pool: str = POOL, macroserver: str = MACROSERVER, door: str = DOOR) -> None:
        self.workdir = os.path.abspath(workdir)
        self.macro_path = list(macro_path)
        self.extra_servers = list(extra_servers)
        self.instance = instance
        self.pool_name, self.macroserver_name, self.door_name = pool, macroserver, door
        self.tango = TangoDatabase(self.workdir)
        self.port = self.tango.port
        self.tango_host = self.tango.host
        self._logs: Dict[str, List[str]] = {name: [] for name in LOG_ATTRIBUTES}
        self._status: Dict[str, str] = {}
        self._lock = threading.Lock()
        self._event_ids: List[int] = []
        self.door: Optional[tango.DeviceProxy] = None
        self.macroserver: Optional[tango.DeviceProxy] = None
        self.db: Optional[tango.Database] = None

    # ------------------------------------------------------------- processes
    @property
    def procs(self) -> List[subprocess.Popen[bytes]]:
        """The processes started here that are still to be ended by :meth:`stop`."""
        return self.tango.procs

    def full_name(self, device: str) -> str:
        """The fully qualified Tango name of ``device`` in this database."""
        return self.tango.full_name(device)

    def child_env(self) -> Dict[str, str]:
        """Environment for child processes (TANGO_HOST of this database)."""
        return dict(self.tango.env)

    def spawn(self, argv: Sequence[str], log_name: str) -> subprocess.Popen[bytes]:
        """Start ``argv`` in its own process group; output goes to ``workdir/log_name``."""
        return self.tango.spawn(argv, log_name)

    def start(self, timeout: float = 120.0) -> SardanaEnv:
        """Start the database and the Sardana server and create the dummy elements."""
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def __enter__(self) -> SardanaEnv:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _start(self, timeout: float) -> None:
        self.tango.start(timeout)
        self.db = self.tango.db
        server = f"Sardana/{self.instance}"
        devices = [(self.pool_name, "Pool"), (self.macroserver_name, "MacroServer"),
                   (self.door_name, "Door")]
        infos = []
        for name, klass in devices:
            info = tango.DbDevInfo()
            info.name, info._class, info.server = name, klass, server
            infos.append(info)
        self.db.add_server(server, infos, with_dserver=True)
        self.db.put_device_property(self.macroserver_name, {
            "PoolNames": [self.pool_name],
            "MacroPath": self.macro_path,
            "EnvironmentDb": [os.path.join(self.workdir, "macroserver.env")],
        })
        self.db.put_device_property(self.door_name, {"MacroServerName": [self.macroserver_name]})
        for extra in self.extra_servers:
            self.register_server(*extra)
        sardana = self.spawn([sardana_executable(), self.instance,
                              "-ORBendPoint", "giop:tcp:127.0.0.1:"], "sardana.log")
        door = tango.DeviceProxy(self.full_name(self.door_name))

        def door_on() -> bool:
            if sardana.poll() is not None:
                raise RuntimeError(
                    f"the Sardana server exited:\n{self.tango.read_log('sardana.log')}")
            return door.state() == tango.DevState.ON

        wait_until(door_on, timeout, "Sardana door")
        self.door = door
        self.door.set_timeout_millis(30000)
        self.macroserver = tango.DeviceProxy(self.full_name(self.macroserver_name))
        self._subscribe()
        for macro in ELEMENT_MACROS:
            run = self.run_macro(list(macro))
            if run.status != "finish":
                raise RuntimeError(f"{' '.join(macro)} failed: {run.status}\n{run.text()}")
        self.set_env(ActiveMntGrp="mntgrp01")
        logger.debug("Sardana %s running on %s", self.instance, self.tango_host)

    def register_server(self, server: str, klass: str, device: str,
                        properties: Optional[Mapping[str, Any]] = None) -> None:
        """Register a further device server (e.g. the SciCatIngestor device)."""
        self.tango.register_server(server, klass, device, properties, with_dserver=True)

    def stop(self) -> None:
        """Unsubscribe and end every process group started here (newest first)."""
        if self.door is not None:
            for event_id in self._event_ids:
                try:
                    self.door.unsubscribe_event(event_id)
                except tango.DevFailed:
                    pass
            self._event_ids = []
        self.tango.stop()

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """Terminate ``proc``'s process group (SIGTERM, then SIGKILL)."""
        kill_process_group(proc)
        if proc in self.tango.procs:
            self.tango.procs.remove(proc)

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
        door = self.door
        with self._lock:
            marks = {attr: len(lines) for attr, lines in self._logs.items()}
            self._status.clear()
        xml = etree.fromstring(door.RunMacro(list(macro))[0])
        node = xml if xml.tag == "macro" else xml.find("macro")
        macro_id = node.get("id")

        def done() -> bool:
            with self._lock:
                state = self._status.get(macro_id, "")
            return state in DONE_STATES and door.state() != tango.DevState.RUNNING

        wait_until(done, timeout, f"macro {' '.join(macro)}", interval=0.05)
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
