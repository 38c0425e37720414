"""``scingestor-gui``: the TaurusGUI overview of every SciCat ingestor of a beamline or hall.

:class:`scingestor_gui.gui.IngestorGui` is a ``TaurusGui`` whose permanent panel *Ingestors* is an
:class:`~scingestor_gui.overview.IngestorOverview` of the devices given on the command
line, or of every ``SciCatIngestor`` device in the Tango database. Opening a row
creates a custom, permanent panel (named after the device) holding the device's
:class:`~scingestor_gui.panel.IngestorPanel`, so it is part of the saved settings and
of every perspective, exactly as TaurusGUI keeps its own custom panels: the next start
re-creates the panels that were open, and *Perspectives* saves and loads layouts.
Settings go where TaurusGUI puts them (``~/.config/scingestor/scingestor-gui.ini``),
or to the file given with ``--settings``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional, Sequence

from scingestor_gui.names import APP_NAME, ORGANIZATION
from scingestor_gui.startup import add_log_level, start_application

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser of ``scingestor-gui``."""
    parser = argparse.ArgumentParser(
        prog=APP_NAME,
        description="Overview of the SciCatIngestor Tango devices of a beamline or hall "
                    "(TaurusGUI): one row per ingestor, its full panel on click.")
    parser.add_argument("devices", nargs="*",
                        help="SciCatIngestor devices to show (default: every device of the "
                             "class in the Tango database)")
    parser.add_argument("--tango-host", default="",
                        help="HOST:PORT of the Tango database to search (default: TANGO_HOST)")
    parser.add_argument("--class", dest="klass", default="SciCatIngestor",
                        help="device class to search for (default: SciCatIngestor)")
    parser.add_argument("--settings", default="",
                        help="settings file (INI) instead of TaurusGUI's per-user one")
    add_log_level(parser, "the GUI")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``scingestor-gui``; return the exit status."""
    args = build_parser().parse_args(argv)
    app = start_application(args.log_level, APP_NAME, ORGANIZATION)
    from scingestor_gui.gui import IngestorGui
    from scingestor_gui.overview import find_ingestors

    devices = list(args.devices)
    if not devices:
        try:
            devices = find_ingestors(args.tango_host, args.klass)
        except Exception as exc:  # noqa: BLE001 - no database: say so and stop
            print(f"{APP_NAME}: cannot search the Tango database: {exc}", file=sys.stderr)
            return 2
        logger.info("found %d %s devices: %s", len(devices), args.klass, devices)
    gui = IngestorGui(devices, settingsname=args.settings)
    gui.show()
    return int(app.exec_())


if __name__ == "__main__":
    sys.exit(main())
