"""Shared fixtures: the development server and the beamtime factory.

``scicat_server`` accepts options through a marker, e.g.
``@pytest.mark.devserver(restrict_ingestor=True, users_login_mode="legacy")``
(any :class:`scingestor.devserver.DevServer` keyword, and ``api_version``).
A test that asks for the ``api_version`` fixture runs once per API version
("v3", "v4"), with ``scicat_server.url`` the root of that version.
``dev_server_factory(**options)`` starts further servers (``started=False``:
a free port with no listener until ``handle.start()``), closed at teardown.

Optional parts (Tango, Sardana, Taurus, Debian tools, Starter, inotify): a skip on a
developer machine, a failure in CI -- see ``tests/parts.py`` (marker ``part``).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from typing import Any, Callable, Iterator, List

import parts
import pytest
from parts import (  # noqa: F401 - hooks: the ``part`` marker; no skip in strict mode
    pytest_make_collect_report,
    pytest_runtest_makereport,
    pytest_runtest_setup,
)

from scingestor.config import config_from_mapping
from scingestor.service import IngestorService
from scingestor.testing import API_VERSIONS, BeamtimeFactory, DevServerHandle, start_dev_server
from scingestor.testing.setup import config_mapping

logger = logging.getLogger(__name__)


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``devserver`` and ``part`` markers."""
    config.addinivalue_line("markers", "devserver(**options): options of scicat_server")
    parts.pytest_configure(config)


@pytest.fixture
def dev_server_factory() -> Iterator[Callable[..., DevServerHandle]]:
    """Start development servers on demand; all are stopped at teardown."""
    handles: List[DevServerHandle] = []

    def make(**options: Any) -> DevServerHandle:
        handle = start_dev_server(**options)
        handles.append(handle)
        return handle

    yield make
    for handle in handles:
        handle.close()


@pytest.fixture(params=API_VERSIONS)
def api_version(request: pytest.FixtureRequest) -> str:
    """Each API version of the dev server in turn ("v3", "v4")."""
    return str(request.param)


@pytest.fixture
def scicat_server(request: pytest.FixtureRequest,
                  dev_server_factory: Callable[..., DevServerHandle]) -> DevServerHandle:
    """A fresh SciCat-compatible server on 127.0.0.1 with a free port."""
    marker = request.node.get_closest_marker("devserver")
    options = dict(marker.kwargs) if marker else {}
    if "api_version" in request.fixturenames:
        options.setdefault("api_version", request.getfixturevalue("api_version"))
    return dev_server_factory(**options)


@pytest.fixture
def beamtime_factory(tmp_path: Any) -> BeamtimeFactory:
    """A beamtime directory ``<tmp>/beamtime`` with metadata and a ``raw`` scan dir."""
    return BeamtimeFactory(tmp_path)


@pytest.fixture
def service_factory(beamtime_factory: BeamtimeFactory,
                    scicat_server: DevServerHandle) -> Iterator[Callable[..., IngestorService]]:
    """Build (and by default start) ingestion services for the factory's beamtime.

    Keyword arguments override configuration keys; every service is stopped at teardown.
    """
    services: List[IngestorService] = []

    def make(start: bool = True, **overrides: Any) -> IngestorService:
        cfg = config_from_mapping(config_mapping(beamtime_factory, scicat_server.url, **overrides))
        service = IngestorService(cfg)
        services.append(service)
        if start:
            service.start()
        return service

    yield make
    for service in services:
        service.stop()


@pytest.fixture
def venv_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the ``nxsfileinfo`` program of this interpreter's environment findable."""
    bindir = os.path.dirname(sys.executable)
    monkeypatch.setenv("PATH", bindir + os.pathsep + os.environ.get("PATH", ""))
    assert shutil.which("nxsfileinfo"), "nxsfileinfo program not installed next to python"
