"""Optional parts of the test environment: a skip on a developer machine, a failure in CI.

Some tests exercise parts that a developer machine may lack (PyTango, Sardana,
Taurus with a Qt binding, the Debian build tools, the Tango Starter, inotify).
Whether such a part is missing is decided here, in one place:

* :func:`require_part` ``(name, available, reason)`` -- call it in a test or fixture;
* ``@pytest.mark.part(name, available, reason)`` -- the same as a marker (also as
  ``pytestmark``), evaluated before the test runs (hook in ``tests/conftest.py``);
* :func:`import_part` ``(module, part)`` -- ``pytest.importorskip`` under this rule.

In **strict mode** a missing part is a test *failure* that names the part and how to
install it; otherwise it is a skip with the same text. Strict mode is on when ``CI``
is ``true``/``1``/``yes`` (as in ``.ci/run``) or ``SCINGESTOR_REQUIRE_ALL`` is
``1``/``true``/``yes``; ``SCINGESTOR_REQUIRE_ALL=0`` turns it off even under ``CI``.

``SCINGESTOR_ABSENT_PARTS=sardana,tango-starter`` treats the listed parts as missing
although they are installed: it shows what a machine without them reports (a skip
locally, a failure in strict mode). It can never turn a failure into a pass.

In strict mode no test may be skipped for any reason: a skip that does not come
from here (``pytest.skip``, ``skipif``, ``importorskip`` added later) is reported as
a failure too, so CI cannot skip in silence.

This module is also a pytest plugin (``-p parts``): the marker and its hooks.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Any, Dict

import pytest

STRICT_ENV = "SCINGESTOR_REQUIRE_ALL"
ABSENT_ENV = "SCINGESTOR_ABSENT_PARTS"
_TRUE = ("1", "true", "yes")
_FALSE = ("0", "false", "no")

#: How to get each part (the README's "Development" section lists the same).
INSTALL: Dict[str, str] = {
    "tango": "pip install -e '.[tango]' (PyTango), e.g. bash scripts/setup.sh",
    "sardana": "pip install -e '.[sardana]' (the Sardana executable in the venv's bin/), "
               "e.g. bash scripts/setup.sh",
    "taurus": "pip install -e '.[gui]' (taurus and PyQt5), e.g. bash scripts/setup.sh",
    "debian-build-tools": "as root: bash scripts/build-deb.sh --install-deps "
                          "(bash scripts/setup.sh does it when run as root)",
    "tango-starter": "as root: apt-get install --no-install-recommends tango-starter "
                     "(bash scripts/setup.sh does it when run as root)",
    "inotify": "a Linux kernel with inotify and a free inotify instance "
               "(sysctl fs.inotify.max_user_instances)",
    "setpriv": "util-linux's setpriv (apt-get install util-linux), needed as root to drop "
               "the capability to read any file",
    "systemd-analyze": "as root: apt-get install --no-install-recommends systemd "
                       "(bash scripts/setup.sh does it when run as root; systemd need not "
                       "run as init)",
    "sandbox": "run the tests as root (a mount namespace and setpriv --reuid=nobody) with "
               "util-linux's setpriv, and the test interpreter usable by user nobody",
}


def _flag(name: str) -> str:
    return os.environ.get(name, "").strip().lower()


def strict() -> bool:
    """True when a missing part must fail the test (CI, or SCINGESTOR_REQUIRE_ALL=1)."""
    require_all = _flag(STRICT_ENV)
    if require_all in _TRUE:
        return True
    if require_all in _FALSE:
        return False
    return _flag("CI") in _TRUE


def absent_parts() -> frozenset:
    """The parts named in ``SCINGESTOR_ABSENT_PARTS``."""
    return frozenset(item.strip() for item in os.environ.get(ABSENT_ENV, "").split(",")
                     if item.strip())


def missing_message(name: str, reason: str) -> str:
    """The text of the skip or failure for part ``name``."""
    how = INSTALL.get(name, "see the README, section Development")
    return f"required part '{name}' is missing: {reason}; install: {how}"


def require_part(name: str, available: Any, reason: str = "") -> None:
    """Return if part ``name`` is ``available``; else fail (strict mode) or skip the test.

    ``reason`` says what is missing (e.g. "no Sardana executable at ..."). A part
    listed in ``SCINGESTOR_ABSENT_PARTS`` counts as missing.
    """
    if name in absent_parts():
        available, reason = False, f"{ABSENT_ENV} lists it"
    if available:
        return
    message = missing_message(name, reason or "not available")
    if strict():
        pytest.fail(f"{message} (strict mode: CI or {STRICT_ENV}=1)", pytrace=False)
    pytest.skip(message)


def import_part(module: str, part: str) -> ModuleType:
    """Import ``module`` (e.g. "tango") of part ``part``; missing: fail or skip the module."""
    if part not in absent_parts():
        try:
            return importlib.import_module(module)
        except ImportError as exc:
            reason = f"cannot import {module}: {exc}"
    else:
        reason = ""
    try:
        require_part(part, False, reason)
    except pytest.skip.Exception as exc:
        raise pytest.skip.Exception(str(exc), allow_module_level=True) from None
    raise AssertionError("unreachable: require_part returned for a missing part")


# ------------------------------------------------------------------------ plugin
def pytest_configure(config: pytest.Config) -> None:
    """Register the ``part`` marker."""
    config.addinivalue_line(
        "markers", "part(name, available, reason): the test needs an optional part; "
                   "missing: a skip, or a failure in strict mode (tests/parts.py)")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Apply every ``part`` marker of ``item`` (closest first) before its fixtures run."""
    for marker in item.iter_markers(name="part"):
        require_part(*marker.args, **marker.kwargs)


def _fail_skip(report: Any) -> None:
    """In strict mode, turn a skip report (not an xfail) into a failure with its reason."""
    if not (report.skipped and strict()) or hasattr(report, "wasxfail"):
        return
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    reason = reason[len("Skipped: "):] if reason.startswith("Skipped: ") else reason
    report.outcome = "failed"
    report.longrepr = (f"skipped, but strict mode (CI or {STRICT_ENV}=1) allows no skip: "
                       f"{reason}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Any:
    """Strict mode: a skipped test fails."""
    outcome = yield
    _fail_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Any:
    """Strict mode: a module skipped at collection is a collection error."""
    outcome = yield
    _fail_skip(outcome.get_result())
