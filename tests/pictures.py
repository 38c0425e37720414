"""The pictures in docs/: made by the tests from a live device, so they cannot go stale.

A test renders a widget (or a session text) into its temporary directory and calls
:func:`check_picture`. With ``SCINGESTOR_UPDATE_PICTURES=1`` the picture is copied to
``docs/<name>``; otherwise the docs picture must exist and have the size of the one
just rendered (the size follows the layout: a widget, column or line more or less
changes it), with no comparison of pixels, which differ with every run (times, pids).
Also the child-process runner of the Qt scenarios (tests/gui_child.py).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DOCS = os.path.join(ROOT, "docs")
UPDATE_ENV = "SCINGESTOR_UPDATE_PICTURES"
CHILD = os.path.join(HERE, "gui_child.py")
RUN_TIMEOUT = 300.0


def updating() -> bool:
    """True when the docs pictures are to be overwritten."""
    return os.environ.get(UPDATE_ENV, "").strip().lower() in ("1", "true", "yes")


def png_size(path: str) -> Tuple[int, int]:
    """(width, height) of a PNG file, from its header."""
    with open(path, "rb") as handle:
        head = handle.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG file"
    return struct.unpack(">II", head[16:24])


def check_picture(made: str, name: str, compare: Sequence[int] = (0, 1)) -> str:
    """Check (or, updating, replace) ``docs/<name>`` against the picture ``made``.

    ``compare`` lists the dimensions that must agree (0 width, 1 height). Returns the
    docs path.
    """
    docs = os.path.join(DOCS, name)
    size = png_size(made)
    assert os.path.getsize(made) > 5000, f"{made} looks empty"
    if updating():
        shutil.copyfile(made, docs)
        return docs
    how = f"run the test with {UPDATE_ENV}=1 to make it, look at it, commit it"
    assert os.path.exists(docs), f"{docs} is missing: {how}"
    shown = png_size(docs)
    for axis in compare:
        assert shown[axis] == size[axis], (
            f"{docs} is {shown[0]}x{shown[1]}, the current layout renders "
            f"{size[0]}x{size[1]}: the picture is stale; {how}")
    return docs


def run_gui_child(workdir: str, *args: str,
                  env: Optional[Mapping[str, str]] = None) -> Dict[str, Any]:
    """Run tests/gui_child.py offscreen in ``workdir``; return its RESULT or fail."""
    child_env = dict(os.environ, QT_QPA_PLATFORM="offscreen",
                     PYTHONPATH=os.pathsep.join(filter(None, [ROOT,
                                                              os.environ.get("PYTHONPATH")])),
                     XDG_RUNTIME_DIR=workdir, XDG_CONFIG_HOME=workdir, HOME=workdir)
    child_env.update(env or {})
    done = subprocess.run([sys.executable, CHILD, *args], cwd=workdir, env=child_env,
                          capture_output=True, text=True, timeout=RUN_TIMEOUT)
    output = f"exit status {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert done.returncode == 0, output
    results = [line[len("RESULT "):] for line in done.stdout.splitlines()
               if line.startswith("RESULT ")]
    assert results, output
    return json.loads(results[-1])
