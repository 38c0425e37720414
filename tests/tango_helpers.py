"""Run the ``SciCatIngestor`` device server as a real process, for tests.

The server is started as in production (``python -m tango_ds.SciCatIngestor <instance>``,
an exec'd subprocess, never a fork of pytest) with its properties in a Tango file
database (``-file=``), so no database server is needed. Clients reach the device by
the address :attr:`IngestorServer.address`,
``tango://127.0.0.1:<port>/<device>#dbase=no``, which both PyTango and Taurus accept.

Usage::

    server = IngestorServer(workdir, {"ConfigFile": path})
    proxy = server.start()
    ...
    server.stop()

or the :func:`ingestor_servers` context manager, which stops every server it started.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import signal
import subprocess
import sys
from typing import Any, Callable, Dict, Iterator, List, Optional

import tango
from tango.test_context import get_server_port_via_pid

from scingestor.testing.setup import wait_for

logger = logging.getLogger(__name__)

#: Seconds to wait for start-up, stop and device conditions.
TIMEOUT = 60.0
#: The repository root (put on the server's PYTHONPATH).
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_instances = itertools.count(1)


def property_value(value: Any) -> str:
    """A value as written in a Tango file database (booleans as true/false, else quoted)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(str(value))


class IngestorServer:
    """One ``SciCatIngestor`` server process with one device and a file database.

    Each server gets its own instance and device name (``test/scicatingestor/<tag>N``):
    the Tango client library caches connections by device name and each server has
    a new port.
    """

    def __init__(self, workdir: str, properties: Dict[str, Any], tag: str = "s") -> None:
        self.workdir = workdir
        self.instance = f"{tag}{next(_instances)}"
        self.device = f"test/scicatingestor/{self.instance}"
        self.db_file = os.path.join(workdir, f"tango-db-{self.instance}.txt")
        self.output = os.path.join(workdir, f"server-{self.instance}.out")
        entries = [f"SciCatIngestor/{self.instance}/DEVICE/SciCatIngestor: {self.device}"]
        entries += [f"{self.device}->{name}: {property_value(value)}"
                    for name, value in properties.items()]
        with open(self.db_file, "w", encoding="utf-8") as handle:
            handle.write("\n".join(entries) + "\n")
        self.process: Optional[subprocess.Popen] = None
        self.address = ""
        self.proxy: Optional[tango.DeviceProxy] = None

    def start(self) -> tango.DeviceProxy:
        """Start the process; return a proxy once the device answers."""
        path = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))
        env = dict(os.environ, ORBscanGranularity="1", PYTHONPATH=path)
        with open(self.output, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tango_ds.SciCatIngestor", self.instance,
                 "-ORBendPoint", "giop:tcp:127.0.0.1:0", f"-file={self.db_file}"],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=self.workdir)
        # Tango prints this line once the server is ready; connecting earlier can wedge it.
        wait_for(lambda: self._alive() and "Ready to accept request" in self.log(),
                 timeout=TIMEOUT, interval=0.1)
        port = get_server_port_via_pid(self.process.pid, "127.0.0.1", retries=400, delay=0.1)
        self.address = f"tango://127.0.0.1:{port}/{self.device}#dbase=no"
        wait_for(self._connect, timeout=TIMEOUT, interval=0.1)
        assert self.proxy is not None
        self.proxy.set_timeout_millis(20000)
        return self.proxy

    def _alive(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"the device server exited:\n{self.log()}")
        return True

    def _connect(self) -> bool:
        self._alive()
        try:
            proxy = tango.DeviceProxy(self.address)
            proxy.ping()
        except tango.DevFailed as exc:
            logger.debug("%s does not answer yet: %s", self.device, exc.args[0].desc)
            return False
        self.proxy = proxy
        return True

    def stop(self) -> Optional[int]:
        """Stop with SIGTERM (as Starter and systemd do); return the exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def log(self) -> str:
        """What the server printed so far."""
        if not os.path.exists(self.output):
            return ""
        with open(self.output, encoding="utf-8", errors="replace") as handle:
            return handle.read()


@contextlib.contextmanager
def ingestor_servers(workdir: str) -> Iterator[Callable[..., IngestorServer]]:
    """Yield ``start(**properties) -> IngestorServer``; every server is stopped at exit."""
    servers: List[IngestorServer] = []

    def start(**properties: Any) -> IngestorServer:
        server = IngestorServer(workdir, properties)
        servers.append(server)
        server.start()
        return server

    try:
        yield start
    finally:
        for server in servers:
            status = server.stop()
            logger.info("%s stopped (exit status %s); output:\n%s", server.device, status,
                        server.log())


def wait_device(proxy: tango.DeviceProxy, predicate: Callable[[], Any], what: str,
                timeout: float = TIMEOUT) -> Any:
    """Wait for ``predicate``; on time-out fail with the device's status report."""
    try:
        return wait_for(predicate, timeout=timeout)
    except TimeoutError:
        raise AssertionError(f"{what}: not reached within {timeout} s; device status: "
                             f"{proxy.StatusReport}") from None
