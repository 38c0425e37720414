"""``scingestor-demo`` as a user runs it: a subprocess, its output and exit status.

The plain demo (dev server + ingestion service in one process) and the full demo
(``--full``: Tango database, SciCatIngestor device, Sardana server, macros run
through the Door); the full one takes about 15-40 s.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
import sys
from importlib.util import find_spec
from typing import List

import pytest

logger = logging.getLogger(__name__)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BT = "99001234"
TIMEOUT = 300


def _demo(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("TANGO_HOST", None)
    return subprocess.run([sys.executable, "-m", "scingestor.demo", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)


def _section(stdout: str, title: str) -> List[str]:
    """The indented lines that follow the line starting with ``title``."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    section = []
    for line in lines[start + 1:]:
        if not line.startswith("  "):
            break
        section.append(line.split())
    return section


def _listening(host_port: str) -> bool:
    host, port = host_port.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


def test_plain_demo(tmp_path):
    result = _demo("--scans", "3", "--workdir", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    rows = _section(result.stdout, "Datasets in the catalogue:")
    assert [row[0] for row in rows] == [f"{BT}/demo_0000{i}" for i in (1, 2, 3)]
    assert all(row[1] == "raw" for row in rows)
    assert "ingested=3 failed=0 last=demo_00003" in result.stdout
    # a given working directory is kept
    assert os.path.isfile(tmp_path / "beamtime" / f"beamtime-metadata-{BT}.json")


SARDANA = os.path.join(os.path.dirname(sys.executable), "Sardana")


@pytest.mark.part("tango", find_spec("tango") is not None, "cannot import tango")
@pytest.mark.part("sardana", os.path.exists(SARDANA), f"no Sardana executable at {SARDANA}")
def test_full_demo():
    result = _demo("--full")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output

    assert "door/scidemo/1> start_measurement demo_calib" in result.stdout
    assert result.stdout.count("door/scidemo/1> ascan mot01 0 1 10 0.01") == 2
    assert "Measurement 'demo_calib' in '" in result.stdout
    assert "door/scidemo/1> stop_measurement" in result.stdout
    appended = re.findall(r"Appending '(demo_\d{5})' to ", result.stdout)
    assert len(appended) == 2, output

    listed = [row[0] for row in _section(result.stdout, "Dataset list ")]
    assert listed[0] == "__command__" and listed[1:3] == appended
    assert re.match(r"demo_calib:\d+\.\d+$", listed[-1]), listed

    rows = {row[0]: row for row in _section(result.stdout, "Datasets in the catalogue")}
    scans = [f"{BT}/{name}" for name in appended]
    assert sorted(rows) == sorted(scans + [f"{BT}/demo_calib"]), output
    for pid in scans:
        assert rows[pid][1] == "raw"
        assert int(rows[pid][2].split("=")[1]) >= 1
    calib = rows[f"{BT}/demo_calib"]
    assert calib[1] == "derived"
    assert int(calib[2].split("=")[1]) >= 2
    assert " ".join(calib[3:]) == f"inputDatasets={scans[0]}, {scans[1]}"

    attributes = {row[0]: " ".join(row[1:])
                  for row in _section(result.stdout, "SciCatIngestor device ")}
    assert attributes["State"] == "ON"
    assert attributes["IngestedCount"] == "3"
    assert attributes["LastIngestedScan"] == "'demo_calib'"
    assert attributes["CurrentMeasurement"] == "''"
    assert attributes["QueueLength"] == "0"
    assert attributes["Status"].startswith("'Watching")

    # everything was cleaned up: the temporary directory and the Tango database
    workdir = re.search(r"^Working directory: (.+)$", result.stdout, re.M).group(1)
    assert not os.path.exists(workdir)
    tango_host = re.search(r"TANGO_HOST=(\S+)", result.stdout).group(1)
    assert not _listening(tango_host)
