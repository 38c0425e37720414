"""A real Tango database on the loopback interface, and device servers registered in it.

:class:`TangoDatabase` runs PyTango's own database server
(``python -m tango.databaseds.database 2``, SQLite in its working directory) on a
free 127.0.0.1 port. It registers servers, devices and properties the way Jive
does (``tango.Database.add_server``, ``put_device_property``) and starts further
processes with ``TANGO_HOST`` pointing at it. ``TANGO_HOST`` is only set for the
child processes: this process talks to the database by explicit host and port.

Every child runs in its own process group (its own session), so a Ctrl-C at the
terminal does not reach it and :meth:`ChildProcesses.stop` ends exactly the
groups started here (SIGTERM, then SIGKILL), newest first.

:class:`FileDatabases` runs device servers without a database server: each gets
its own Tango file database (``-file=``) and is reached by
``tango://127.0.0.1:<port>/<device>#dbase=no``.

:class:`DeviceServer` starts one device server process (e.g.
``python -m tango_ds.SciCatIngestor demo``) through either of them, waits until
the server says it is ready and the device answers, and stops it with SIGTERM.

Used by the tests, the Sardana environment and ``scingestor-demo --full``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Union

import tango
from tango.test_context import get_server_port_via_pid

logger = logging.getLogger(__name__)

#: The device of PyTango's database server (instance ``2``).
DATABASE_DEVICE = "sys/database/2"
#: What a PyTango/cppTango server prints once it serves requests.
READY_LINE = "Ready to accept request"
#: Seconds a process gets to end after SIGTERM before SIGKILL.
TERM_GRACE = 10.0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], Any], timeout: float, what: str,
               interval: float = 0.2) -> Any:
    """Poll ``predicate`` until it returns something true and return that value.

    Exceptions raised by ``predicate`` count as "not yet", except
    :class:`ProcessExited`, which ends the wait at once. After ``timeout``
    seconds a :class:`TimeoutError` names ``what`` and the last exception.
    """
    deadline = time.monotonic() + timeout
    last: Optional[BaseException] = None
    while True:
        try:
            value = predicate()
        except ProcessExited:
            raise
        except Exception as exc:  # noqa: BLE001 - keep polling until the deadline
            last = exc
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready within {timeout} s (last error: {last})")
        time.sleep(interval)


class ProcessExited(RuntimeError):
    """A child process ended while it was expected to run."""


def property_values(properties: Mapping[str, Any]) -> Dict[str, List[str]]:
    """Device properties as Tango stores them: every value a list of strings.

    Booleans become ``true``/``false`` (as Jive writes them); lists and tuples
    give one string per element; anything else is converted with ``str``.
    """
    result: Dict[str, List[str]] = {}
    for name, value in properties.items():
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        result[name] = [str(item).lower() if isinstance(item, bool) else str(item)
                        for item in values]
    return result


def signal_group(proc: subprocess.Popen[bytes], signum: int, timeout: float) -> bool:
    """Send ``signum`` to ``proc``'s process group and wait up to ``timeout`` s for ``proc``.

    True when ``proc`` has ended (or its group no longer exists), False after the timeout.
    """
    try:
        os.killpg(proc.pid, signum)
    except ProcessLookupError:
        return True
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        return False
    return True


def kill_process_group(proc: subprocess.Popen[bytes], grace: float = TERM_GRACE) -> None:
    """End ``proc`` and its process group: SIGTERM, then SIGKILL after ``grace`` s.

    ``proc`` must have been started with ``start_new_session=True`` (its pid is
    its process group id). Remaining members of the group get SIGKILL once the
    leader has ended.
    """
    if proc.poll() is None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if signal_group(proc, sig, grace):
                break
    try:  # children the leader left behind (same group)
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class ChildProcesses:
    """Child processes started in ``workdir``, each in its own session, ended together.

    Every child gets this process's environment without the names in ``unset``
    and with ``extra_env`` added. :meth:`stop` ends every process group started
    here that has not been ended before, newest first.
    """

    def __init__(self, workdir: str, extra_env: Optional[Mapping[str, str]] = None,
                 unset: Iterable[str] = ()) -> None:
        self.workdir = os.path.abspath(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.env: Dict[str, str] = dict(os.environ)
        for name in unset:
            self.env.pop(name, None)
        self.env.update(extra_env or {})
        self.procs: List[subprocess.Popen[bytes]] = []

    def stop(self) -> None:
        """End every process group started here, newest first."""
        while self.procs:
            kill_process_group(self.procs.pop())

    def spawn(self, argv: Sequence[str], log_name: str,
              env: Optional[Mapping[str, str]] = None) -> subprocess.Popen[bytes]:
        """Start ``argv`` in ``workdir`` in its own session; output to ``workdir/log_name``.

        The process is ended by :meth:`stop` unless it has been ended before.
        """
        child_env = dict(self.env)
        child_env.update(env or {})
        with open(os.path.join(self.workdir, log_name), "ab") as log:
            proc = subprocess.Popen(list(argv), cwd=self.workdir, env=child_env,
                                    stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(proc)
        logger.debug("started %s (pid %d)", " ".join(argv), proc.pid)
        return proc

    def end(self, proc: subprocess.Popen[bytes], signum: int = signal.SIGTERM,
            timeout: float = 60.0) -> int:
        """Send ``signum`` to ``proc``'s group, wait for it and return its exit status.

        After ``timeout`` s the group gets SIGKILL. ``proc`` is no longer ended
        by :meth:`stop`.
        """
        if proc.poll() is None and not signal_group(proc, signum, timeout):
            kill_process_group(proc, grace=TERM_GRACE)
        if proc in self.procs:
            self.procs.remove(proc)
        return int(proc.wait())

    def read_log(self, log_name: str) -> str:
        """The text of ``workdir/log_name`` ('' when it does not exist)."""
        try:
            with open(os.path.join(self.workdir, log_name), encoding="utf-8",
                      errors="replace") as handle:
                return handle.read()
        except FileNotFoundError:
            return ""


class TangoDatabase(ChildProcesses):
    """PyTango's SQLite Tango database on a free loopback port, started in ``workdir``.

    ``extra_env`` is added to the environment of every child process (the
    database, device servers, Sardana). Use as a context manager or call
    :meth:`start` and :meth:`stop`.
    """

    def __init__(self, workdir: str, port: Optional[int] = None,
                 extra_env: Optional[Mapping[str, str]] = None) -> None:
        super().__init__(workdir, extra_env, unset=("ORBendPoint",))
        self.port = port or free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.env["TANGO_HOST"] = self.host
        self.process: Optional[subprocess.Popen[bytes]] = None
        self._db: Optional[tango.Database] = None

    # ----------------------------------------------------------------- lifecycle
    def __enter__(self) -> TangoDatabase:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self, timeout: float = 60.0) -> TangoDatabase:
        """Start the database server and wait until it answers; returns ``self``."""
        try:
            self.process = self.spawn(
                [sys.executable, "-m", "tango.databaseds.database", "2"], "databaseds.log")
            self._db = wait_until(self._connect, timeout, "Tango database", interval=0.2)
        except BaseException:
            self.stop()
            raise
        logger.debug("Tango database on %s (%s)", self.host, self.workdir)
        return self

    def _connect(self) -> Optional[tango.Database]:
        assert self.process is not None
        if self.process.poll() is not None:
            log = self.read_log("databaseds.log")
            raise ProcessExited(f"the Tango database server exited:\n{log}")
        try:
            db = tango.Database("127.0.0.1", self.port)
            db.get_info()
        except tango.DevFailed:
            return None
        return db

    def stop(self) -> None:
        """End every process group started here, newest first (the database last)."""
        super().stop()
        self._db = None

    # ----------------------------------------------------------------- database
    @property
    def db(self) -> tango.Database:
        """The ``tango.Database`` client of this database (after :meth:`start`)."""
        if self._db is None:
            raise RuntimeError("the Tango database is not running")
        return self._db

    def full_name(self, device: str) -> str:
        """The fully qualified name ``tango://host:port/device``."""
        return f"tango://{self.host}/{device}"

    def device_address(self, device: str, proc: subprocess.Popen[bytes]) -> str:
        """The fully qualified name of ``device`` (whichever process serves it)."""
        return self.full_name(device)

    def proxy(self, device: str) -> tango.DeviceProxy:
        """A ``DeviceProxy`` of ``device`` in this database."""
        return tango.DeviceProxy(self.full_name(device))

    def register_server(self, server: str, klass: str, devices: Union[str, Sequence[str]],
                        properties: Optional[Mapping[str, Any]] = None,
                        with_dserver: bool = False) -> None:
        """Register ``server`` (``Executable/instance``) with ``devices`` of ``klass``.

        ``properties`` (see :func:`property_values`) are put on every device,
        as Jive's "Create server" wizard and property tab do.
        """
        names = [devices] if isinstance(devices, str) else list(devices)
        infos = []
        for name in names:
            info = tango.DbDevInfo()
            info.name, info._class, info.server = name, klass, server
            infos.append(info)
        self.db.add_server(server, infos, with_dserver=with_dserver)
        if properties:
            for name in names:
                self.db.put_device_property(name, property_values(properties))

    def exported(self, device: str) -> bool:
        """True when ``device`` is marked exported in the database."""
        return bool(self.db.get_device_info(device).exported)


def file_property_value(value: Any) -> str:
    """A property value as written in a Tango file database.

    Booleans become ``true``/``false``; anything else a double-quoted string
    (with escapes) of ``str(value)``.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(str(value))


class FileDatabases(ChildProcesses):
    """Device servers without a database server, each with its own Tango file database.

    :meth:`register_server` writes the file database of one server; its command
    line must name the file (``-file=<path>``) and should listen on the loopback
    interface (``-ORBendPoint giop:tcp:127.0.0.1:0``). Clients reach a device by
    ``tango://127.0.0.1:<port>/<device>#dbase=no``, which both PyTango and Taurus
    accept (the same mechanism as ``tango.test_context.DeviceTestContext``).
    """

    def register_server(self, server: str, klass: str, device: str,
                        properties: Optional[Mapping[str, Any]] = None) -> str:
        """Write the file database of ``server`` (``Executable/instance``); return its path.

        It declares ``device`` of ``klass`` with ``properties`` (see
        :func:`file_property_value`).
        """
        path = os.path.join(self.workdir, f"tango-db-{server.replace('/', '-')}.txt")
        entries = [f"{server}/DEVICE/{klass}: {device}"]
        entries += [f"{device}->{name}: {file_property_value(value)}"
                    for name, value in (properties or {}).items()]
        with open(path, "w", encoding="utf-8") as handle:
            handle.write("\n".join(entries) + "\n")
        return path

    def device_address(self, device: str, proc: subprocess.Popen[bytes]) -> str:
        """``tango://127.0.0.1:<port>/<device>#dbase=no`` with the port ``proc`` serves on."""
        port = get_server_port_via_pid(proc.pid, "127.0.0.1", retries=400, delay=0.1)
        return f"tango://127.0.0.1:{port}/{device}#dbase=no"


class DeviceServer:
    """One device server process for ``device``, started through ``database``.

    ``database`` is a :class:`TangoDatabase` the server is registered in, or
    :class:`FileDatabases` that wrote its file database. ``argv`` is the full
    command line (e.g. ``[python, -m, tango_ds.SciCatIngestor, demo]``).
    :meth:`start` returns once the server printed that it is ready and
    ``device`` answers a ping; :attr:`proxy` is then its ``DeviceProxy`` and
    :attr:`address` the address it was reached by.
    """

    def __init__(self, database: Union[TangoDatabase, FileDatabases], argv: Sequence[str],
                 device: str, log_name: str, proxy_timeout_ms: int = 20000) -> None:
        self.database = database
        self.argv = list(argv)
        self.device = device
        self.log_name = log_name
        self.output = os.path.join(database.workdir, log_name)
        self.proxy_timeout_ms = proxy_timeout_ms
        self.process: Optional[subprocess.Popen[bytes]] = None
        self.address = ""
        self._proxy: Optional[tango.DeviceProxy] = None
        self._ready_mark = 0

    def start(self, timeout: float = 60.0) -> DeviceServer:
        """Start the process and wait until the device answers; returns ``self``."""
        self._ready_mark = self.log().count(READY_LINE)
        self.process = self.database.spawn(self.argv, self.log_name)
        # connect only once the server says it is ready (never during its start-up)
        wait_until(self._ready, timeout, f"device server {' '.join(self.argv)}", interval=0.1)
        self.address = self.database.device_address(self.device, self.process)
        self._proxy = wait_until(self._connect, timeout, f"device {self.device}", interval=0.1)
        self._proxy.set_timeout_millis(self.proxy_timeout_ms)
        logger.debug("device server for %s started (pid %d)", self.device, self.process.pid)
        return self

    @property
    def proxy(self) -> tango.DeviceProxy:
        """The device's proxy (after :meth:`start`)."""
        if self._proxy is None:
            raise RuntimeError(f"the device server of {self.device} is not running")
        return self._proxy

    def _check_alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            raise ProcessExited(f"the device server exited:\n{self.log()}")

    def _ready(self) -> bool:
        self._check_alive()
        return self.log().count(READY_LINE) > self._ready_mark

    def _connect(self) -> Optional[tango.DeviceProxy]:
        self._check_alive()
        try:
            proxy = tango.DeviceProxy(self.address)
            proxy.ping()
        except tango.DevFailed as exc:
            logger.debug("%s does not answer yet: %s", self.device, exc.args[0].desc)
            return None
        return proxy

    def running(self) -> bool:
        """True while the process runs."""
        return self.process is not None and self.process.poll() is None

    def terminate(self, signum: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        """Send ``signum`` (default SIGTERM) and return the exit status."""
        if self.process is None:
            return 0
        return self.database.end(self.process, signum, timeout)

    def log(self) -> str:
        """Everything the server printed so far."""
        return self.database.read_log(self.log_name)
