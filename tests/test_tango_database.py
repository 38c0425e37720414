"""``SciCatIngestor`` with a real Tango database, registered and started as Jive and Starter do.

PyTango's own database server (``python -m tango.databaseds.database 2``, SQLite in
its working directory) runs on a free port; the server is registered through
``tango.Database`` (``add_server``, ``put_device_property``) and started as
``python -m tango_ds.SciCatIngestor test`` with ``TANGO_HOST`` set, then stopped
with SIGTERM. ``TANGO_HOST`` is only set for the subprocesses: the pytest process
talks to the database by explicit host and port.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import Any, Dict, Iterator

import pytest
from parts import import_part

tango = import_part("tango", "tango")

from scingestor.testing import BeamtimeFactory, DevServerHandle, start_dev_server  # noqa: E402
from scingestor.testing.setup import wait_for, write_config  # noqa: E402
from scingestor.testing.tango_env import DeviceServer, TangoDatabase  # noqa: E402

logger = logging.getLogger(__name__)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER = "SciCatIngestor/test"
DEVICE = "p00/scicatingestor/test"
BT = "99001234"
TIMEOUT = 60.0


class TangoHost(TangoDatabase):
    """A running PyTango SQLite database server and the environment to reach it."""

    def __init__(self, workdir: str) -> None:
        super().__init__(workdir, extra_env={
            "ORBscanGranularity": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))})
        self.start(TIMEOUT)


def ServerProcess(tango_host: TangoHost, workdir: str) -> DeviceServer:
    """``python -m tango_ds.SciCatIngestor test``, the way Starter runs an executable."""
    assert os.path.samefile(workdir, tango_host.workdir)
    return DeviceServer(tango_host, [sys.executable, "-m", "tango_ds.SciCatIngestor", "test"],
                        DEVICE, "SciCatIngestor.out").start(TIMEOUT)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("tangodb"))


@pytest.fixture(scope="module")
def tango_host(workdir: str) -> Iterator[TangoHost]:
    host = TangoHost(workdir)
    yield host
    host.stop()


@pytest.fixture(scope="module")
def module_scicat() -> Iterator[DevServerHandle]:
    handle = start_dev_server()
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def factory(tmp_path_factory: pytest.TempPathFactory) -> BeamtimeFactory:
    return BeamtimeFactory(tmp_path_factory.mktemp("bt"))


@pytest.fixture(scope="module")
def properties(factory: BeamtimeFactory, module_scicat: DevServerHandle,
               workdir: str) -> Dict[str, Any]:
    with open(factory.list_path(), "a", encoding="utf-8"):
        pass
    return {
        "ConfigFile": write_config(factory, module_scicat.url),
        "AutoStart": True,
        "LogLevel": "info",
        "LogFile": os.path.join(workdir, "scingestor.log"),
    }


@pytest.fixture(scope="module")
def registered(tango_host: TangoHost, properties: Dict[str, Any]) -> Dict[str, Any]:
    """Register the server and its properties as Jive's 'Create server' wizard does."""
    tango_host.register_server(SERVER, "SciCatIngestor", DEVICE, properties)
    return properties


@pytest.fixture(scope="module")
def server(tango_host: TangoHost, registered: Dict[str, Any],
           workdir: str) -> Iterator[DeviceServer]:
    process = ServerProcess(tango_host, workdir)
    yield process
    process.terminate()


def test_the_registration_is_in_the_database(tango_host, registered):
    db = tango_host.db
    assert list(db.get_server_list("SciCatIngestor/*")) == [SERVER]
    assert list(db.get_device_class_list(SERVER))[-2:] == [DEVICE, "SciCatIngestor"]
    stored = db.get_device_property(DEVICE, ["ConfigFile", "AutoStart"])
    assert list(stored["ConfigFile"]) == [registered["ConfigFile"]]
    assert list(stored["AutoStart"]) == ["true"]


def test_help_lists_the_registered_instances(tango_host, registered):
    result = subprocess.run(
        [sys.executable, "-m", "tango_ds.SciCatIngestor", "-?"], env=tango_host.env,
        capture_output=True, text=True, timeout=TIMEOUT, check=False)
    output = result.stdout + result.stderr
    assert "Instance names defined in database for server SciCatIngestor" in output
    assert "\ttest" in output


def test_the_started_server_is_exported_and_ingests(tango_host, server, factory, module_scicat):
    proxy = server.proxy
    wait_for(lambda: proxy.state() == tango.DevState.ON, timeout=TIMEOUT)
    info = tango_host.db.get_device_info(DEVICE)
    assert info.exported and info.class_name == "SciCatIngestor"
    assert proxy.info().server_id == SERVER
    factory.write_nexus_scan("scan_00001")
    factory.append_list(None, "scan_00001")
    wait_for(lambda: proxy.IngestedCount == 1, timeout=TIMEOUT)
    assert module_scicat.dataset(f"{BT}/scan_00001") is not None
    assert proxy.LastIngestedScan == "scan_00001"


def test_a_property_changed_in_jive_applies_at_init(tango_host, server, registered, workdir):
    db, proxy = tango_host.db, server.proxy
    missing = os.path.join(workdir, "missing.yaml")
    db.put_device_property(DEVICE, {"ConfigFile": [missing]})
    try:
        proxy.Init()
        assert proxy.state() == tango.DevState.FAULT
        assert "missing.yaml" in proxy.status()
    finally:
        db.put_device_property(DEVICE, {"ConfigFile": [registered["ConfigFile"]]})
    proxy.ReloadConfiguration()
    wait_for(lambda: proxy.state() == tango.DevState.ON, timeout=TIMEOUT)


def test_sigterm_stops_cleanly_and_memorized_scan_dir_survives(
        tango_host, server, factory, registered, workdir):
    proxy = server.proxy
    wait_for(lambda: proxy.state() == tango.DevState.ON, timeout=TIMEOUT)
    proxy.ScanDir = factory.scandir
    factory.write_nexus_scan("scan_00002")
    factory.append_list(None, "scan_00002")
    wait_for(lambda: any(line.startswith("scan_00002 ") for line in factory.read_ingested()),
             timeout=TIMEOUT)
    assert server.terminate(signal.SIGTERM) == 0
    with open(registered["LogFile"], encoding="utf-8") as handle:
        log = handle.read()
    assert f"SciCatIngestor {DEVICE}: service stopped" in log
    assert not tango_host.db.get_device_info(DEVICE).exported
    assert [line.split(" ")[0] for line in factory.read_ingested()][-2:] == [
        "scan_00001", "scan_00002"]
    again = ServerProcess(tango_host, workdir)
    try:
        assert again.proxy.ScanDir == factory.scandir
        wait_for(lambda: again.proxy.state() == tango.DevState.ON, timeout=TIMEOUT)
        assert again.proxy.IngestedCount == 0  # nothing ingested twice after a restart
    finally:
        assert again.terminate(signal.SIGINT) == 0


STARTER = shutil.which("Starter") or next(
    (path for path in ("/usr/lib/tango/Starter", "/usr/bin/Starter") if os.path.exists(path)),
    None)


@pytest.mark.part("tango-starter", STARTER is not None,
                  "no Starter executable (PATH, /usr/lib/tango/Starter, /usr/bin/Starter)")
def test_starter_starts_and_stops_the_server(tango_host, registered, workdir):
    """Astor's recipe: Starter on the host, the executable in its StartDsPath."""
    server, device = "SciCatIngestor/starter", "p00/scicatingestor/starter"
    info = tango.DbDevInfo()
    info.name, info._class, info.server = device, "SciCatIngestor", server
    tango_host.db.add_server(server, [info])
    tango_host.db.put_device_property(device, {
        "ConfigFile": [registered["ConfigFile"]],
        "LogFile": [os.path.join(workdir, "starter-started.log")]})
    bindir = os.path.join(workdir, "bin")
    os.makedirs(bindir, exist_ok=True)
    script = os.path.join(bindir, "SciCatIngestor")
    with open(script, "w", encoding="utf-8") as handle:
        handle.write(f"#!/bin/sh\nexec {sys.executable} -m tango_ds.SciCatIngestor \"$@\"\n")
    os.chmod(script, 0o755)
    hostname = socket.gethostname().split(".")[0]
    starter_device = f"tango/admin/{hostname}"
    info = tango.DbDevInfo()
    info.name, info._class, info.server = starter_device, "Starter", f"Starter/{hostname}"
    tango_host.db.add_server(info.server, [info])
    tango_host.db.put_device_property(starter_device, {"StartDsPath": [bindir]})
    out = open(os.path.join(workdir, "Starter.out"), "ab")
    starter = subprocess.Popen([STARTER, hostname], cwd=workdir, env=tango_host.env,
                               stdout=out, stderr=subprocess.STDOUT)
    out.close()
    try:
        admin = wait_for(lambda: _ping(tango_host, starter_device), timeout=TIMEOUT)
        admin.set_timeout_millis(10000)
        # Astor's "Server -> Edit": this host, controlled, level 0 (not started at boot)
        server_info = tango.DbServerInfo()
        server_info.name, server_info.host, server_info.mode, server_info.level = (
            server, hostname, 1, 0)
        tango_host.db.put_server_info(server_info)
        admin.UpdateServersInfo()
        admin.DevStart(server)
        proxy = wait_for(lambda: _ping(tango_host, device), timeout=TIMEOUT)
        wait_for(lambda: proxy.state() == tango.DevState.ON, timeout=TIMEOUT)
        wait_for(lambda: server in admin.DevGetRunningServers(True), timeout=TIMEOUT)
        admin.DevStop(server)  # the admin device's Kill: delete_device runs
        wait_for(lambda: not tango_host.db.get_device_info(device).exported, timeout=TIMEOUT)
        wait_for(lambda: server in admin.DevGetStopServers(True), timeout=TIMEOUT)
        with open(os.path.join(workdir, "starter-started.log"), encoding="utf-8") as handle:
            assert handle.read().rstrip().endswith(f"{device}: service stopped")
    finally:
        _stop_started_server(tango_host, device)
        starter.terminate()
        starter.wait(TIMEOUT)


def _stop_started_server(tango_host: TangoHost, device: str) -> None:
    """After a failure, end the server that Starter started (its pid is in the database)."""
    info = tango_host.db.get_device_info(device)
    if info.exported and info.pid > 0:
        try:
            os.kill(info.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _ping(tango_host: TangoHost, name: str) -> Any:
    try:
        proxy = tango_host.proxy(name)
        proxy.ping()
    except tango.DevFailed:
        time.sleep(0.1)
        return None
    return proxy
