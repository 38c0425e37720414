"""Options and start-up steps shared by the three command-line tools."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional, Sequence

from ..config import ConfigError, IngestorConfig, load_config
from ..logsetup import LOG_LEVELS, setup_logging

logger = logging.getLogger(__name__)


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """The configuration and logging options of every tool (README "Running the daemon")."""
    parser.add_argument(
        "-c",
        "--configuration",
        dest="config",
        metavar="CONFIG",
        default=None,
        help="configuration file (YAML); without it every key has its default",
    )
    parser.add_argument(
        "-l",
        "--log",
        dest="log",
        metavar="LOG",
        default="info",
        help=f"logging level, one of: {', '.join(LOG_LEVELS)} (default: info)",
    )
    parser.add_argument(
        "-f",
        "--log-file",
        dest="logfile",
        metavar="LOGFILE",
        default=None,
        help="write the log to this file (rotated at start-up, 5 backups) instead of stderr",
    )
    parser.add_argument(
        "-t",
        "--timestamps",
        dest="timestamps",
        action="store_true",
        default=False,
        help="prefix every log line with a timestamp",
    )


def start_up(
    parser: argparse.ArgumentParser,
    argv: Optional[Sequence[str]],
    options: Optional[argparse.Namespace] = None,
) -> tuple[argparse.Namespace, IngestorConfig]:
    """Parse options (unless given), set up logging and load the configuration.

    A bad level or log file is a usage error (exit 2); a bad configuration
    prints one line naming the file and key and exits with status 1.
    """
    if options is None:
        options = parser.parse_args(argv)
    try:
        setup_logging(options.log, options.logfile, options.timestamps)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        cfg = load_config(options.config)
    except ConfigError as exc:
        logger.error("%s", exc)
        sys.exit(1)
    logger.debug("CONFIGURATION: %s", cfg.to_dict())
    return options, cfg
