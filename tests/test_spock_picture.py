"""docs/spock.png: a spock session in a real MacroServer, rendered as a terminal picture.

A Tango database, a Sardana server (dummy motor, counter, measurement group) and a
``SciCatIngestor`` device run as in tests/test_sardana_macros.py. The session starts a
measurement, runs two ``ascan``s (SciCat rejects the first dataset) and shows the
state with ``scicat_status`` -- or, where the macro is not there, with
``show_current_measurement``. Each macro runs through the Door, as spock runs it; its
output lines are written below a spock prompt (``Door_scitest_1 [n]: <macro>``) and the
text is rendered by tests/gui_child.py. The picture is checked (or updated) by
tests/pictures.py; only its width is compared (the text's line count follows the
server's output).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile

import pytest
from parts import import_part
from pictures import check_picture, run_gui_child

tango = import_part("tango", "tango")
import_part("sardana", "sardana")
import_part("taurus", "taurus")

from sardana_env import SardanaEnv  # noqa: E402

from sardana_macros import macro_path  # noqa: E402
from scingestor.testing import BeamtimeFactory, start_dev_server  # noqa: E402
from scingestor.testing.setup import wait_for, write_config  # noqa: E402
from scingestor.testing.tango_env import DeviceServer  # noqa: E402

SARDANA = os.path.join(os.path.dirname(sys.executable), "Sardana")
DEVICE = "p00/scicatingestor/1"
PROMPT = "Door_scitest_1"
COLUMNS = 100

pytestmark = pytest.mark.part("sardana", os.path.exists(SARDANA),
                              f"no Sardana executable at {SARDANA}")


def _has_macro(name: str) -> bool:
    """True when the project's macros define ``name`` (scicat_status comes with issue 13)."""
    directory = macro_path()
    pattern = re.compile(rf"^def {name}\(|^class {name}\(", re.M)
    for entry in os.listdir(directory):
        if entry.endswith(".py"):
            with open(os.path.join(directory, entry), encoding="utf-8") as handle:
                if pattern.search(handle.read()):
                    return True
    return False


def test_spock_session_picture(tmp_path) -> None:
    # a short fixed-length root, so that the paths in the session fit the picture
    root = tempfile.mkdtemp(prefix="sci-", dir="/tmp")
    server = start_dev_server()
    env = SardanaEnv(os.path.join(root, "tango"), [macro_path()])
    try:
        factory = BeamtimeFactory(root)
        env.start()
        run = env.run_macro(["defgh", "scicat_post_scan", "post-scan"])
        assert run.status == "finish", run.text()
        env.register_server("SciCatIngestor/scitest", "SciCatIngestor", DEVICE,
                            {"ConfigFile": [write_config(factory, server.url)]})
        device = DeviceServer(env.tango, [sys.executable, "-m", "tango_ds.SciCatIngestor",
                                          "scitest", "-ORBendPoint", "giop:tcp:127.0.0.1:"],
                              DEVICE, "ingestor.log").start(120)
        wait_for(lambda: device.proxy.state() == tango.DevState.ON, timeout=60)
        env.set_env(ScanDir=factory.scandir, ScanFile=["scan.h5", "scan.fio"],
                    AppendSciCatDataset=True, BeamtimeFilePath=factory.beamtime_dir,
                    SciCatIngestorDevice=DEVICE)
        status = "scicat_status" if _has_macro("scicat_status") else "show_current_measurement"
        session = []

        def run_macro(*macro: str) -> None:
            result = env.run_macro(list(macro))
            assert result.status == "finish", result.text()
            session.append(f"{PROMPT} [{len(session) + 1}]: {' '.join(macro)}")
            lines = result.output + [f"!{line}" for line in result.warnings + result.errors]
            session.extend(lines)
            session.append("")

        run_macro("start_measurement", "ptycho1")
        server.faults.fail_next(1, status=400, method="POST", path="Datasets$",
                                body={"statusCode": 400, "message": "proposalId must be a "
                                                                    "string"})
        run_macro("ascan", "mot01", "0", "1", "2", "0.01")
        run_macro("ascan", "mot01", "0", "1", "2", "0.01")
        wait_for(lambda: device.proxy.QueueLength == 0 and device.proxy.IngestedCount >= 1,
                 timeout=60)
        run_macro(status)
        session.append(f"{PROMPT} [{len(session) // 2 + 1}]: ")
        transcript = tmp_path / "session.txt"
        transcript.write_text("\n".join(_numbered(session)) + "\n", encoding="utf-8")
        made = str(tmp_path / "spock.png")
        seen = run_gui_child(str(tmp_path), "text", "--input", str(transcript),
                             "--columns", str(COLUMNS), "--picture", made)
    finally:
        env.stop()
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    text = transcript.read_text(encoding="utf-8")
    assert f"{PROMPT} [1]: start_measurement ptycho1" in text
    assert f"]: {status}" in text and "ptycho1" in text
    assert seen["lines"] > 8
    check_picture(made, "spock.png", compare=(0,))


def _numbered(session: list) -> list:
    """The prompts numbered 1, 2, ... in order (as spock counts its inputs)."""
    count = 0
    numbered = []
    for line in session:
        if line.startswith(f"{PROMPT} ["):
            count += 1
            line = re.sub(rf"^{PROMPT} \[\d+\]", f"{PROMPT} [{count}]", line)
        numbered.append(line)
    return numbered
