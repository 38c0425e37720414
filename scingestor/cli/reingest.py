"""``scicat_dataset_ingest``: one-pass re-ingestion, e.g. at the end of a beamtime."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from typing import Optional, Sequence, TextIO

from ..pipeline import EntryOutcome
from ..reingest import Reingestor, Summary, count_entries, find_lists
from .common import add_common_options, start_up

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scicat_dataset_ingest",
        description="Re-ingestion script for SciCat Datasets: one pass over every beamtime of "
        "beamtime_dirs; sends what is new, changed or failed, skips what is up to date.",
        epilog="examples:\n"
        "  scicat_dataset_ingest -c ~/.scingestor.yaml\n"
        "  scicat_dataset_ingest -c ~/.scingestor.yaml --dry-run",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common_options(parser)
    parser.add_argument(
        "-n",
        "--dry-run",
        dest="dry_run",
        action="store_true",
        help="generate missing metadata files and show what would be sent; send nothing "
        "and leave the ingested lists unchanged",
    )
    parser.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="no progress bar, even on a terminal",
    )
    return parser


class Progress:
    """A one-line progress bar on a terminal: done/total, rate, failures."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.failed = 0
        self._stream = stream
        self._start = time.monotonic()

    def __call__(self, outcome: EntryOutcome) -> None:
        self.done += 1
        self.failed += 0 if outcome.ok else 1
        self.draw()

    def draw(self) -> None:
        width = 30
        filled = min(width, int(width * self.done / self.total))
        elapsed = max(time.monotonic() - self._start, 1e-6)
        self._stream.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} scans"
            f"  {self.done / elapsed:.1f}/s  failed: {self.failed}"
        )
        self._stream.flush()

    def close(self) -> None:
        self._stream.write("\n")
        self._stream.flush()


def report(summary: Summary, dry_run: bool) -> None:
    verb = "would be sent" if dry_run else "ingested"
    logger.info(
        "DatasetIngest: %d list(s): %d %s, %d unchanged, %d failed",
        summary.lists,
        summary.ingested,
        verb,
        summary.unchanged,
        summary.failed,
    )
    for failure in summary.failures:
        logger.error("DatasetIngest: failed: %s", failure)
    for problem in summary.problems:
        logger.error("DatasetIngest: %s", problem)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Exit 0 when everything went in (or was up to date), 1 otherwise."""
    parser = build_parser()
    options, cfg = start_up(parser, argv)
    if not cfg.beamtime_dirs and not cfg.beamtime_base_dir:
        logger.warning("DatasetIngest: Beamtime directories not defined")
        return 0
    summary = Summary()
    contexts = find_lists(cfg, summary)
    progress = None
    if options.progress and sys.stderr.isatty() and not options.logfile:
        progress = Progress(count_entries(contexts), sys.stderr)
    reingestor = Reingestor(cfg, dry_run=options.dry_run, on_outcome=progress)

    def on_signal(signum: int, _frame: object) -> None:
        logger.warning("signal %d received: stopping after the current scan", signum)
        reingestor.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        reingestor.run(contexts, summary)
    finally:
        if progress is not None:
            progress.close()
    report(summary, options.dry_run)
    return 0 if summary.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
