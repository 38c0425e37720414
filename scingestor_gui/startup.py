"""What both GUI entry points do first: the ``--log-level`` option, logging, the Taurus app.

``scingestor-panel`` (``python -m scingestor_gui``) and ``scingestor-gui``
(:mod:`scingestor_gui.app`) use it; Qt and Taurus are imported only in
:func:`start_application`, so that ``--help`` works without a display.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def add_log_level(parser: argparse.ArgumentParser, what: str) -> None:
    """The ``--log-level`` option (``what``: the GUI's name in the help text)."""
    parser.add_argument("--log-level", default="warning", choices=LOG_LEVELS,
                        help=f"log level of {what} and of Taurus (default: warning)")


def start_application(log_level: str, app_name: str, org_name: str) -> Any:
    """Set up logging and Taurus' log level; return a new ``TaurusApplication``."""
    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import taurus
    from taurus.qt.qtgui.application import TaurusApplication

    taurus.setLogLevel(getattr(taurus, log_level.capitalize()))
    return TaurusApplication([sys.argv[0]], cmd_line_parser=None, app_name=app_name,
                             org_name=org_name)
