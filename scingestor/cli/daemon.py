"""``scicat_dataset_ingestor``: the watching daemon."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from typing import Optional, Sequence

from ..service import IngestorService
from .common import add_common_options, start_up

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scicat_dataset_ingestor",
        description="BeamtimeWatcher service SciCat Dataset ingestor: watches beamtime "
        "directories and ingests every scan listed in the dataset lists into SciCat.",
        epilog="examples:\n"
        "  scicat_dataset_ingestor -c ~/.scingestor.yaml\n"
        "  scicat_dataset_ingestor -c ~/.scingestor.yaml -l debug",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common_options(parser)
    parser.add_argument(
        "-r",
        "--runtime",
        dest="runtime",
        metavar="RUNTIME",
        default="0",
        help="stop after RUNTIME seconds (default: 0 = run until SIGTERM/SIGINT)",
    )
    return parser


def _runtime(text: str) -> float:
    try:
        return max(0.0, float(text))
    except (TypeError, ValueError):
        logger.warning("runtime %r is not a number: running until stopped", text)
        return 0.0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the daemon; returns the exit status (0 after a clean stop)."""
    parser = build_parser()
    options, cfg = start_up(parser, argv)
    if not cfg.beamtime_dirs and not cfg.beamtime_base_dir:
        logger.warning("BeamtimeWatcher: Beamtime directories not defined")
        return 0
    runtime = _runtime(options.runtime)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        name = "SIGTERM" if signum == signal.SIGTERM else "Keyboard interrupt (SIGINT)"
        logger.warning("%s received...", name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    service = IngestorService(cfg)
    problem = service.credentials_problem()
    if problem:
        logger.error("%s: datasets cannot be sent until this is fixed", problem)
    started = time.monotonic()
    service.start()
    try:
        while not stop.is_set():
            if runtime:
                left = runtime - (time.monotonic() - started)
                if left <= 0:
                    break
                stop.wait(min(left, 1.0))
            else:
                stop.wait(1.0)
    finally:
        logger.debug("Cleaning up...")
        service.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
