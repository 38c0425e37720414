"""The systemd unit of python3-scingestor: its sandbox, rated and exercised.

* ``systemd-analyze security --offline=yes`` rates the shipped unit "OK" or better
  (overall exposure below 5.0), and rates the same unit without its sandbox as unsafe,
  so the check can tell the two apart (part ``systemd-analyze``).
* The daemon runs under the unit's key restrictions, rebuilt without systemd as PID 1
  by ``tests/systemd_sandbox.py``: a read-only file system except the state directory,
  an unprivileged user without capabilities and with ``no_new_privs``, and the seccomp
  filters of ``MemoryDenyWriteExecute=`` and ``RestrictAddressFamilies=``. It ingests a
  NeXus scan (numpy, h5py, nxstools in-process) into the dev server and stays up until
  its run time ends (part ``sandbox``: root, for the mount namespace and ``setpriv``).
"""

from __future__ import annotations

import configparser
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest
import yaml
from parts import require_part

from scingestor.testing import BeamtimeFactory
from scingestor.testing.setup import DEFAULT_PASSWORD, config_mapping

REPO = Path(__file__).resolve().parent.parent
UNIT = REPO / "debian" / "python3-scingestor.scicat-dataset-ingestor.service"
UNIT_NAME = "scicat-dataset-ingestor.service"   # the name dh_installsystemd installs
SANDBOX = Path(__file__).resolve().parent / "systemd_sandbox.py"
# systemd-analyze's levels (src/analyze/analyze-security.c): exposure >= 10.0 DANGEROUS,
# >= 9.0 UNSAFE, >= 7.5 EXPOSED, >= 5.0 MEDIUM, >= 1.0 OK, >= 0.1 SAFE, else PERFECT.
OK_OR_BETTER = ("OK", "SAFE", "PERFECT")
OK_LIMIT = 5.0
SUMMARY = re.compile(r"Overall exposure level for (\S+): (\d+(?:\.\d+)?) ([A-Z]+)")
SANDBOX_KEYS = re.compile(
    r"^(User|Group|NoNewPrivileges|CapabilityBoundingSet|AmbientCapabilities|Protect\w+|"
    r"Private\w+|Restrict\w+|LockPersonality|MemoryDenyWriteExecute|RemoveIPC|KeyringMode|"
    r"SystemCall\w+|DevicePolicy|ProcSubset|UMask)=.*\n", re.M)


# ----------------------------------------------------------------- the unit file
def _service_settings() -> Dict[str, List[str]]:
    """Every ``[Service]`` key of the shipped unit with all its values, in order."""
    parser = configparser.RawConfigParser(strict=False, interpolation=None,
                                          dict_type=_MultiDict)
    parser.optionxform = str   # keys are case-sensitive
    parser.read_string(UNIT.read_text(encoding="utf-8"))
    return {key: value.split("\n") for key, value in parser["Service"].items()}


class _MultiDict(dict):
    """Repeated keys (SystemCallFilter=, Environment=) keep all values."""

    def __setitem__(self, key, value):
        if isinstance(value, list) and key in self:
            self[key].extend(value)
            return
        super().__setitem__(key, value)


def test_unit_runs_as_a_system_user_in_a_sandbox() -> None:
    service = _service_settings()
    single = {key: values[-1] for key, values in service.items()}
    assert single["Type"] == "exec"
    assert single["ExecStart"] == (
        "/usr/bin/scicat_dataset_ingestor -c ${SCINGESTOR_CONFIG} $SCINGESTOR_OPTIONS")
    assert single["User"] == single["Group"] == "scingestor"
    assert single["StateDirectory"] == "scingestor"
    expected = {
        "NoNewPrivileges": "yes", "CapabilityBoundingSet": "", "AmbientCapabilities": "",
        "ProtectSystem": "strict", "ProtectHome": "read-only", "PrivateTmp": "yes",
        "PrivateDevices": "yes", "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes", "ProtectKernelLogs": "yes",
        "ProtectControlGroups": "yes", "ProtectClock": "yes", "ProtectHostname": "yes",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "RestrictNamespaces": "yes",
        "RestrictRealtime": "yes", "RestrictSUIDSGID": "yes", "LockPersonality": "yes",
        "MemoryDenyWriteExecute": "yes", "SystemCallArchitectures": "native",
    }
    assert {key: single.get(key) for key in expected} == expected
    assert "@system-service" in service["SystemCallFilter"]
    assert re.fullmatch(r"0[0-7]{3}", single["UMask"])
    # The site adds its beamtime paths; the package makes nothing but the state dir writable.
    assert "ReadWritePaths" not in service
    assert service["Environment"] == ["SCINGESTOR_CONFIG=/etc/scingestor/scingestor.yaml",
                                      "SCINGESTOR_OPTIONS="]


# ----------------------------------------------------------- systemd-analyze security
def _systemd_analyze() -> str:
    tool = shutil.which("systemd-analyze", path="/usr/bin:/bin:/usr/sbin:/sbin")
    require_part("systemd-analyze", tool is not None, "no systemd-analyze on PATH")
    return str(tool)


def _rate(text: str, directory: Path) -> Tuple[float, str, subprocess.CompletedProcess]:
    """Exposure and level of a unit with ``text``; also the run with ``--threshold=49``."""
    directory.mkdir(exist_ok=True)
    unit = directory / UNIT_NAME
    unit.write_text(text, encoding="utf-8")
    tool = _systemd_analyze()
    done = subprocess.run([tool, "security", "--offline=yes", "--no-pager", str(unit)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    found = SUMMARY.findall(done.stdout)
    assert len(found) == 1, done.stdout[-2000:]
    name, exposure, level = found[0]
    assert name == UNIT_NAME
    # The same limit through the tool itself: exit status non-zero above 4.9.
    limited = subprocess.run([tool, "security", "--offline=yes", "--no-pager",
                              "--threshold=49", str(unit)],
                             capture_output=True, text=True, timeout=120, check=False)
    return float(exposure), level, limited


def test_systemd_analyze_rates_the_unit_ok_or_better(tmp_path: Path) -> None:
    text = UNIT.read_text(encoding="utf-8")
    exposure, level, limited = _rate(text, tmp_path / "shipped")
    assert level in OK_OR_BETTER, (exposure, level)
    assert exposure < OK_LIMIT
    assert limited.returncode == 0, limited.stderr
    # Every setting was understood (a typo would be ignored with a warning, not rated).
    assert not re.search(r"Unknown key|Failed to parse|Invalid|ignoring", limited.stderr,
                         re.I), limited.stderr


def test_systemd_analyze_rates_the_unit_without_sandbox_unsafe(tmp_path: Path) -> None:
    bare, removed = SANDBOX_KEYS.subn("", UNIT.read_text(encoding="utf-8"))
    assert removed >= 25
    exposure, level, limited = _rate(bare, tmp_path / "bare")
    assert level in ("UNSAFE", "DANGEROUS"), (exposure, level)
    assert exposure >= 9.0
    assert limited.returncode != 0


# ------------------------------------------------------------- running sandboxed
def _sandbox_available() -> str:
    """Why the daemon cannot be run in the rebuilt sandbox here ("" if it can)."""
    if os.geteuid() != 0:
        return "not root (a mount namespace and setpriv --reuid need root)"
    if shutil.which("setpriv") is None:
        return "no setpriv on PATH (util-linux)"
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        return "no user 'nobody'"
    probe = subprocess.run(
        _chain(["/"], {"PATH": "/usr/bin:/bin"}, [sys.executable, "-c", "import scingestor"]),
        capture_output=True, text=True, timeout=120, check=False)
    if probe.returncode != 0:
        return f"cannot run {sys.executable} sandboxed as nobody: {probe.stderr.strip()[-300:]}"
    return ""


def _chain(writable: List[str], env: Dict[str, str], command: List[str]) -> List[str]:
    """The command line of ``command`` in the rebuilt sandbox (``env`` via ``env -i``)."""
    rw = [arg for path in writable for arg in ("--rw", path)]
    # The interpreter of the tests may live below /root (pyenv): reachable for nobody
    # inside the namespace only; the package's /usr/bin/python3 needs no such help.
    rw += ["--expose", os.path.realpath(sys.base_prefix)]
    setpriv = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
               "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all", "--"]
    environment = ["env", "-i"] + [f"{key}={value}" for key, value in env.items()]
    return ([sys.executable, str(SANDBOX), "readonly", *rw, "--"] + setpriv + environment
            + [sys.executable, str(SANDBOX), "seccomp", "--"] + command)


@pytest.fixture
def sandbox_root() -> Iterator[Path]:
    """A directory that user nobody can traverse (pytest's tmp dirs are root-only)."""
    reason = _sandbox_available()
    require_part("sandbox", not reason, reason)
    root = Path(tempfile.mkdtemp(prefix="scingestor-sandbox-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _state_dir(root: Path) -> Path:
    """Like StateDirectory=: owned by the service's user, HOME of that user."""
    state = root / "var-lib-scingestor"
    (state / ".scicat").mkdir(parents=True)
    (state / ".scicat" / "pwd").write_text(DEFAULT_PASSWORD + "\n", encoding="utf-8")
    (state / ".scicat" / "pwd").chmod(0o600)
    nobody = pwd.getpwnam("nobody")
    for path in (state, state / ".scicat", state / ".scicat" / "pwd"):
        os.chown(path, nobody.pw_uid, nobody.pw_gid)
    return state


def test_sandbox_rebuild_restricts(sandbox_root: Path) -> None:
    """What the daemon test relies on: the rebuilt sandbox really restricts."""
    state = _state_dir(sandbox_root)
    probe = r"""
import mmap, os, socket, sys
def outcome(action):
    try:
        action()
        return "ok"
    except OSError as exc:
        return exc.strerror
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print("uid", os.getuid(), os.getgid(), os.getgroups())
print("caps", status["CapEff"].strip(), status["CapBnd"].strip(), status["NoNewPrivs"].strip())
print("state", outcome(lambda: open(sys.argv[1] + "/f", "w").close()))
print("etc", outcome(lambda: os.mkdir("/etc/scingestor-sandbox-probe")))
print("tmp", outcome(lambda: os.mkdir("/tmp/scingestor-sandbox-probe")))
print("wx", outcome(lambda: mmap.mmap(-1, 4096, prot=7)))
print("rw", outcome(lambda: mmap.mmap(-1, 4096, prot=3)))
print("netlink", outcome(lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW)))
print("inet6", outcome(lambda: socket.socket(socket.AF_INET6).close()))
"""
    done = subprocess.run(
        _chain([str(state)], {"PATH": "/usr/bin:/bin"},
               [sys.executable, "-c", probe, str(state)]),
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    nobody = pwd.getpwnam("nobody")
    assert lines["uid"] == f"{nobody.pw_uid} {nobody.pw_gid} []"
    assert lines["caps"] == "0000000000000000 0000000000000000 1"
    assert lines["state"] == "ok"
    assert lines["etc"] == "Read-only file system"     # ProtectSystem=strict
    assert lines["tmp"] == "Read-only file system"     # stricter than PrivateTmp=
    assert lines["wx"] == "Operation not permitted"    # MemoryDenyWriteExecute=
    assert lines["rw"] == "ok"
    assert lines["netlink"] == "Address family not supported by protocol"
    assert lines["inet6"] == "ok"


def _tree(directory: str) -> Dict[str, Tuple[int, float]]:
    result = {}
    for base, _dirs, files in os.walk(directory):
        for name in files:
            path = os.path.join(base, name)
            stat = os.stat(path)
            result[path] = (stat.st_size, stat.st_mtime)
    return result


def test_daemon_ingests_in_the_sandbox(sandbox_root: Path, scicat_server) -> None:
    factory = BeamtimeFactory(sandbox_root)
    factory.write_nexus_scan("scan_00001", png=True)
    factory.append_list(None, "scan_00001")
    state = _state_dir(sandbox_root)
    # The recommended sandboxed configuration: every write below the state directory;
    # the credential file in the service user's home ({homepath} = HOME = state dir);
    # "localhost" so that the name is resolved (glibc without AF_NETLINK).
    url = scicat_server.url.replace("127.0.0.1", "localhost")
    mapping = config_mapping(factory, url, ingestor_var_dir=str(state),
                             metadata_in_var_dir=True,
                             ingestor_credential_file="{homepath}/.scicat/pwd")
    config = sandbox_root / "scingestor.yaml"
    config.write_text(yaml.safe_dump(mapping), encoding="utf-8")
    for base, dirs, files in os.walk(sandbox_root):
        if base.startswith(str(state)):
            continue
        for name in dirs:
            os.chmod(os.path.join(base, name), 0o755)
        for name in files:
            os.chmod(os.path.join(base, name), 0o644)
    before = _tree(factory.beamtime_dir)
    daemon = Path(sys.executable).parent / "scicat_dataset_ingestor"
    command = ([str(daemon)] if daemon.exists()
               else [sys.executable, "-m", "scingestor.cli.daemon"])
    runtime = 8.0
    env = {"HOME": str(state), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    started = time.monotonic()
    done = subprocess.run(
        _chain([str(state)], env, command + ["-c", str(config), "-r", str(runtime), "-t"]),
        capture_output=True, text=True, timeout=120, check=False)
    elapsed = time.monotonic() - started
    log = done.stdout + done.stderr
    assert done.returncode == 0, log
    assert elapsed >= runtime - 0.5, log            # it stayed up until -r ended
    assert "Traceback" not in log, log
    assert not re.search(r"Read-only file system|Permission denied|Operation not permitted",
                         log), log
    pids = [dataset["pid"] for dataset in scicat_server.datasets()]
    assert any(pid.endswith("/scan_00001") for pid in pids), (pids, log)
    assert scicat_server.datablocks(), log
    ingested = factory.read_ingested(var_dir=str(state))
    assert len(ingested) == 1 and ingested[0].startswith("scan_00001"), (ingested, log)
    # nothing was written into the beamtime: it was read-only for the daemon
    assert _tree(factory.beamtime_dir) == before
