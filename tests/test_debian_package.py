"""The Debian packages built by scripts/build-deb.sh: file lists and control fields.

The packages are built once per module (``scripts/build-deb.sh`` into a temporary
directory, lintian included). When dpkg-buildpackage or the build dependencies of
debian/control are not installed, the tests are skipped locally and fail in CI
(part ``debian-build-tools``, tests/parts.py); on Debian/Ubuntu install them with
``bash scripts/build-deb.sh --install-deps`` or (as root)::

    apt-get install --no-install-recommends dpkg-dev fakeroot debhelper dh-python \
        pybuild-plugin-pyproject python3-all python3-setuptools python3-wheel lintian
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from parts import require_part

REPO = Path(__file__).resolve().parent.parent
BUILD_SCRIPT = REPO / "scripts" / "build-deb.sh"
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
DIST = "usr/lib/python3/dist-packages"


def _system_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = SYSTEM_PATH
    return env


def _missing_build_tools() -> str:
    """Why the packages cannot be built here ("" if they can)."""
    for tool in ("dpkg-buildpackage", "dpkg-checkbuilddeps", "dpkg-deb", "dh", "lintian"):
        if shutil.which(tool, path=SYSTEM_PATH) is None:
            return f"{tool} is not installed"
    check = subprocess.run(
        ["dpkg-checkbuilddeps"], cwd=REPO, env=_system_env(),
        capture_output=True, text=True, check=False,
    )
    if check.returncode != 0:
        return (check.stderr or check.stdout).strip().splitlines()[-1]
    return ""


class BuiltPackage:
    """One .deb: its file list (``dpkg-deb -c``) and control fields (``dpkg-deb -f``)."""

    def __init__(self, path: Path):
        self.path = path
        listing = subprocess.run(
            ["dpkg-deb", "-c", str(path)], capture_output=True, text=True, check=True
        ).stdout
        self.entries = {}
        for line in listing.splitlines():
            # drwxr-xr-x root/root 0 2026-11-24 11:30 ./usr/bin/ [-> target]
            fields = line.split(None, 5)
            name = fields[5].split(" -> ")[0]
            self.entries[name[2:].rstrip("/")] = fields[0]
        control = subprocess.run(
            ["dpkg-deb", "-f", str(path)], capture_output=True, text=True, check=True
        ).stdout
        self.fields = {}
        key = None
        for line in control.splitlines():
            if line[:1] in (" ", "\t") and key:
                self.fields[key] += "\n" + line
            else:
                key, _, value = line.partition(":")
                self.fields[key] = value.strip()

    def relations(self, field: str) -> dict:
        """``Depends`` etc. as {package: version constraint or ""} (alternatives flattened)."""
        result = {}
        for item in re.split(r"[,|]", self.fields.get(field, "")):
            item = item.strip()
            if item:
                match = re.match(r"([^\s(]+)\s*(?:\((.*)\))?", item)
                result[match.group(1)] = (match.group(2) or "").strip()
        return result

    def has(self, name: str) -> bool:
        return name in self.entries

    def has_doc(self, name: str) -> bool:
        """dh_compress gzips documentation larger than 4 kB."""
        return self.has(name) or self.has(name + ".gz")

    def mode(self, name: str) -> str:
        return self.entries[name]


@pytest.fixture(scope="module")
def debs(tmp_path_factory):
    reason = _missing_build_tools()
    require_part("debian-build-tools", not reason, f"cannot build Debian packages here: {reason}")
    outdir = tmp_path_factory.mktemp("deb")
    run = subprocess.run(
        ["bash", str(BUILD_SCRIPT), str(outdir)], cwd=REPO, env=_system_env(),
        capture_output=True, text=True, check=False, timeout=900,
    )
    assert run.returncode == 0, f"build-deb.sh failed:\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
    packages = {}
    for deb in outdir.glob("*.deb"):
        package = BuiltPackage(deb)
        packages[package.fields["Package"]] = package
    packages["_outdir"] = outdir
    packages["_output"] = run.stdout + run.stderr
    return packages


@pytest.fixture(scope="module")
def lib(debs) -> BuiltPackage:
    return debs["python3-scingestor"]


@pytest.fixture(scope="module")
def server(debs) -> BuiltPackage:
    return debs["scingestor-tango"]


def _version() -> str:
    first = (REPO / "debian" / "changelog").read_text(encoding="utf-8").splitlines()[0]
    return re.match(r"\S+ \(([^)]+)\)", first).group(1)


def test_two_binary_packages_are_built(debs):
    names = sorted(k for k in debs if not k.startswith("_"))
    assert names == ["python3-scingestor", "scingestor-tango"]
    for name in names:
        assert debs[name].path.name == f"{name}_{_version()}_all.deb"


def test_build_left_the_repository_clean():
    for leftover in ("debian/tmp", "debian/build-src", "debian/python3-scingestor",
                     "debian/scingestor-tango", ".pybuild", "debian/files"):
        assert not (REPO / leftover).exists(), leftover


def test_lintian_has_no_errors(debs):
    report = (debs["_outdir"] / "lintian.txt").read_text(encoding="utf-8")
    errors = [line for line in report.splitlines() if line.startswith("E: ")]
    assert errors == []
    assert "lintian: no errors" in debs["_output"]


def test_library_control_fields(lib):
    assert lib.fields["Source"] == "scingestor"
    assert lib.fields["Version"] == _version()
    assert lib.fields["Architecture"] == "all"
    assert lib.fields["Section"] == "python"
    depends = lib.relations("Depends")
    for needed in ("python3-requests", "python3-yaml", "python3-h5py", "python3-dateutil",
                   "python3-numpy", "python3-matplotlib", "python3-nxstools"):
        assert needed in depends, needed
    assert depends["python3-nxstools"].startswith(">=")
    assert any(name.startswith("python3:any") or name == "python3" for name in depends)
    # the fall-back inotifyx and the Tango extra are not hard dependencies
    assert not any("inotifyx" in name for name in depends)
    assert "python3-tango" not in depends
    assert "python3-tango" in lib.relations("Recommends")


def test_library_contains_the_modules(lib):
    for module in ("scingestor/__init__.py", "scingestor/service.py", "scingestor/config.py",
                   "scingestor/cli/daemon.py", "scingestor/cli/reingest.py",
                   "scingestor/cli/model.py", "scingestor/scicat/client.py",
                   "scingestor/watch/watcher.py", "scingestor/devserver/__main__.py",
                   "scingestor/demo.py"):
        assert lib.has(f"{DIST}/{module}"), module
    assert any(re.fullmatch(rf"{DIST}/scingestor-[\d.]+\.dist-info/METADATA", name)
               for name in lib.entries)
    # byte-code is compiled at installation (dh_python3), never shipped
    assert not any(name.endswith(".pyc") for name in lib.entries)
    assert not any(name.startswith(f"{DIST}/tango_ds") for name in lib.entries)
    assert not any("/tests/" in name for name in lib.entries)


def test_library_contains_the_command_line_tools(lib):
    for tool in ("scicat_dataset_ingestor", "scicat_dataset_ingest", "scicat_ingest",
                 "scingestor-devserver", "scingestor-demo"):
        assert lib.has(f"usr/bin/{tool}"), tool
        assert lib.mode(f"usr/bin/{tool}") == "-rwxr-xr-x", tool
    assert not lib.has("usr/bin/SciCatIngestor")


def test_library_contains_the_sardana_macros(lib):
    for module in ("__init__.py", "__main__.py", "scingestor_macros.py", "scicat_records.py"):
        assert lib.has(f"{DIST}/sardana_macros/{module}"), module


def test_library_contains_the_man_pages(lib):
    for tool in ("scicat_dataset_ingestor", "scicat_dataset_ingest", "scicat_ingest"):
        assert lib.has(f"usr/share/man/man1/{tool}.1.gz"), tool


def test_library_contains_the_systemd_unit_and_docs(lib):
    assert lib.has("lib/systemd/system/scicat-dataset-ingestor.service") or lib.has(
        "usr/lib/systemd/system/scicat-dataset-ingestor.service")
    assert lib.has("usr/share/doc/python3-scingestor/copyright")
    assert lib.has("usr/share/doc/python3-scingestor/examples/scingestor.yaml")
    assert lib.has_doc("usr/share/doc/python3-scingestor/README.md")
    assert lib.has_doc("usr/share/doc/python3-scingestor/packaging.md")


def test_systemd_unit_is_installed_but_not_enabled(lib, tmp_path):
    subprocess.run(["dpkg-deb", "-e", str(lib.path), str(tmp_path / "control")], check=True)
    # dh_installsystemd --no-enable --no-start: the unit is enabled again only if
    # the administrator had enabled it ("debian-installed" guard), never started.
    script = (tmp_path / "control" / "postinst").read_text(encoding="utf-8")
    assert "deb-systemd-helper debian-installed 'scicat-dataset-ingestor.service'" in script
    assert "was-enabled defaults to true" not in script
    assert "deb-systemd-invoke" not in script
    subprocess.run(["dpkg-deb", "-x", str(lib.path), str(tmp_path / "root")], check=True)
    units = list((tmp_path / "root").glob("**/systemd/system/scicat-dataset-ingestor.service"))
    assert len(units) == 1
    unit = units[0].read_text(encoding="utf-8")
    assert re.search(r"^ExecStart=/usr/bin/scicat_dataset_ingestor -c ", unit, re.M)
    assert re.search(r"^WantedBy=multi-user.target$", unit, re.M)
    # the sandbox (tests/test_systemd_unit.py rates it) and its user
    assert re.search(r"^User=scingestor$", unit, re.M)
    assert re.search(r"^ProtectSystem=strict$", unit, re.M)
    script = (tmp_path / "root" / "usr/bin/scicat_dataset_ingestor").read_text(encoding="utf-8")
    assert script.startswith("#!/usr/bin/python3")
    assert "scingestor.cli.daemon" in script


def test_server_control_fields(server):
    assert server.fields["Source"] == "scingestor"
    assert server.fields["Version"] == _version()
    assert server.fields["Architecture"] == "all"
    depends = server.relations("Depends")
    assert "python3-tango" in depends
    assert depends["python3-scingestor"] == f"= {_version()}"


def test_server_contains_the_device_server(server):
    assert server.has("usr/bin/SciCatIngestor")
    assert server.mode("usr/bin/SciCatIngestor") == "-rwxr-xr-x"
    assert server.has(f"{DIST}/tango_ds/__init__.py")
    assert server.has(f"{DIST}/tango_ds/SciCatIngestor.py")
    assert server.has("usr/share/man/man1/SciCatIngestor.1.gz")
    for tool in ("scingestor-panel", "scingestor-gui"):  # the Taurus panel and overview
        assert server.has(f"usr/bin/{tool}"), tool
        assert server.has(f"usr/share/man/man1/{tool}.1.gz"), tool
    assert server.has(
        "usr/share/doc/scingestor-tango/examples/SciCatIngestor.properties.example")
    assert server.has_doc("usr/share/doc/scingestor-tango/tango.md")
    assert server.has("usr/share/doc/scingestor-tango/copyright")
    # nothing of the library is duplicated in the server package
    assert not any(name.startswith(f"{DIST}/scingestor/") for name in server.entries)
    assert not any(name.startswith("usr/bin/scicat") for name in server.entries)


def test_no_file_is_in_both_packages(lib, server):
    files_lib = {name for name, mode in lib.entries.items() if not mode.startswith("d")}
    files_server = {name for name, mode in server.entries.items() if not mode.startswith("d")}
    assert files_lib & files_server == set()


def test_package_creates_the_system_user_of_the_unit(lib, tmp_path):
    """postinst: a system user and group "scingestor" (adduser), before debhelper's part."""
    assert "adduser" in lib.relations("Depends")
    subprocess.run(["dpkg-deb", "-e", str(lib.path), str(tmp_path / "control")], check=True)
    postinst = (tmp_path / "control" / "postinst").read_text(encoding="utf-8")
    joined = postinst.replace("\\\n", " ")     # continuation lines
    command = re.search(r"^\s*adduser (.*)$", joined, re.M)
    assert command, postinst
    words = command.group(1).split()
    assert words[-1] == "scingestor"
    for option in ("--system", "--group", "--home", "/var/lib/scingestor", "--shell",
                   "/usr/sbin/nologin"):
        assert option in words, option
    assert "getent passwd scingestor" in postinst
    assert postinst.index("adduser") < postinst.index("deb-systemd-helper")
    # purge removes the state directory, not the user (its uid owns files elsewhere)
    postrm = (tmp_path / "control" / "postrm").read_text(encoding="utf-8")
    assert "rm -rf /var/lib/scingestor" in postrm
    assert "deluser" not in postrm

