"""Run the ``SciCatIngestor`` device server as a real process, for tests.

A thin layer over :mod:`scingestor.testing.tango_env`: the server is started as in
production (``python -m tango_ds.SciCatIngestor <instance>``, an exec'd subprocess,
never a fork of pytest) with its properties in a Tango file database (``-file=``,
:class:`~scingestor.testing.tango_env.FileDatabases`), so no database server is
needed. Clients reach the device by the server's
:attr:`~scingestor.testing.tango_env.DeviceServer.address`,
``tango://127.0.0.1:<port>/<device>#dbase=no``, which both PyTango and Taurus accept.

Usage::

    with ingestor_servers(workdir) as start:
        server = start(ConfigFile=path)
        server.proxy.state()

Every server started there is stopped with SIGTERM (as Starter and systemd do) at exit.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import sys
import threading
from typing import Any, Callable, Iterator, List, Mapping

import tango

from scingestor.testing.setup import wait_for
from scingestor.testing.tango_env import DeviceServer, FileDatabases

logger = logging.getLogger(__name__)

#: Seconds to wait for start-up, stop and device conditions.
TIMEOUT = 60.0
#: The repository root (put on the server's PYTHONPATH).
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: The client timeout of the device proxies, in milliseconds.
PROXY_TIMEOUT_MS = 20000

_instances = itertools.count(1)


def ingestor_server(host: FileDatabases, properties: Mapping[str, Any],
                    tag: str = "s") -> DeviceServer:
    """A ``SciCatIngestor`` server (not started yet) with one device and its file database.

    Each server gets its own instance and device name (``test/scicatingestor/<tag>N``):
    the Tango client library caches connections by device name and each server has
    a new port.
    """
    instance = f"{tag}{next(_instances)}"
    device = f"test/scicatingestor/{instance}"
    db_file = host.register_server(f"SciCatIngestor/{instance}", "SciCatIngestor", device,
                                   properties)
    argv = [sys.executable, "-m", "tango_ds.SciCatIngestor", instance,
            "-ORBendPoint", "giop:tcp:127.0.0.1:0", f"-file={db_file}"]
    return DeviceServer(host, argv, device, f"server-{instance}.out",
                        proxy_timeout_ms=PROXY_TIMEOUT_MS)


@contextlib.contextmanager
def ingestor_servers(workdir: str) -> Iterator[Callable[..., DeviceServer]]:
    """Yield ``start(**properties) -> DeviceServer`` (started, its device answering).

    The servers run in ``workdir`` (created if needed); every server is stopped at exit
    and its output logged.
    """
    path = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))
    host = FileDatabases(workdir, extra_env={"ORBscanGranularity": "1", "PYTHONPATH": path})
    servers: List[DeviceServer] = []

    def start(**properties: Any) -> DeviceServer:
        server = ingestor_server(host, properties)
        servers.append(server)
        return server.start(TIMEOUT)

    try:
        yield start
    finally:
        try:
            for server in servers:
                status = server.terminate(timeout=TIMEOUT)
                logger.info("%s stopped (exit status %s); output:\n%s", server.device,
                            status, server.log())
        finally:
            host.stop()


def wait_device(proxy: tango.DeviceProxy, predicate: Callable[[], Any], what: str,
                timeout: float = TIMEOUT) -> Any:
    """Wait for ``predicate``; on time-out fail with the device's status report."""
    try:
        return wait_for(predicate, timeout=timeout)
    except TimeoutError:
        raise AssertionError(f"{what}: not reached within {timeout} s; device status: "
                             f"{proxy.StatusReport}") from None


class EventLog:
    """Thread-safe change-event callback: remembers every value received."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.values: List[Any] = []

    def __call__(self, event: Any) -> None:
        if event.err or event.attr_value is None:
            return
        with self._lock:
            self.values.append(event.attr_value.value)

    def seen(self, predicate: Callable[[Any], bool]) -> bool:
        with self._lock:
            return any(predicate(value) for value in list(self.values))
