"""``scingestor-panel <device>``: the :class:`IngestorPanel` of one device in its own window.

Also runs as ``python -m scingestor_gui <device>``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional, Sequence

from scingestor_gui.startup import add_log_level, start_application

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser of ``scingestor-panel``."""
    parser = argparse.ArgumentParser(
        prog="scingestor-panel",
        description="Show the ingestion status of a SciCatIngestor Tango device and start/stop "
                    "measurements and re-ingestion.")
    parser.add_argument("device",
                        help="the SciCatIngestor device, e.g. p00/scicatingestor/1 or "
                             "tango://tango-host:10000/p00/scicatingestor/1")
    add_log_level(parser, "the panel")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Open the panel for the device given on the command line; return the exit status."""
    args = build_parser().parse_args(argv)
    app = start_application(args.log_level, "scingestor-panel", "scingestor")
    from scingestor_gui.panel import IngestorPanel

    panel = IngestorPanel()
    panel.setModel(args.device)
    panel.setWindowTitle(f"SciCat ingestor - {args.device}")
    panel.resize(640, panel.sizeHint().height())
    panel.show()
    logger.info("showing %s", args.device)
    return int(app.exec_())


if __name__ == "__main__":
    sys.exit(main())
