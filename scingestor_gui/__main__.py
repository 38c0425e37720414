"""``scingestor-panel <device>``: the :class:`IngestorPanel` of one device in its own window.

Also runs as ``python -m scingestor_gui <device>``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional, Sequence

logger = logging.getLogger(__name__)

_LEVELS = ("debug", "info", "warning", "error", "critical")


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser of ``scingestor-panel``."""
    parser = argparse.ArgumentParser(
        prog="scingestor-panel",
        description="Show the ingestion status of a SciCatIngestor Tango device and start/stop "
                    "measurements and re-ingestion.")
    parser.add_argument("device",
                        help="the SciCatIngestor device, e.g. p00/scicatingestor/1 or "
                             "tango://tango-host:10000/p00/scicatingestor/1")
    parser.add_argument("--log-level", default="warning", choices=_LEVELS,
                        help="log level of the panel and of Taurus (default: warning)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Open the panel for the device given on the command line; return the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Qt and Taurus are imported only now, so that --help works without a display.
    import taurus
    from taurus.qt.qtgui.application import TaurusApplication

    from scingestor_gui.panel import IngestorPanel

    taurus.setLogLevel(getattr(taurus, args.log_level.capitalize()))
    app = TaurusApplication([sys.argv[0]], cmd_line_parser=None, app_name="scingestor-panel",
                            org_name="scingestor")
    panel = IngestorPanel()
    panel.setModel(args.device)
    panel.setWindowTitle(f"SciCat ingestor - {args.device}")
    panel.resize(640, panel.sizeHint().height())
    panel.show()
    logger.info("showing %s", args.device)
    return int(app.exec_())


if __name__ == "__main__":
    sys.exit(main())
