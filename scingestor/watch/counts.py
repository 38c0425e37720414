"""How much is watched, in O(1): counts and a version that changes with the watched set.

The status snapshot (:mod:`scingestor.status`) carries these instead of the lists
(docs/architecture.md, "Decisions"); the sorted lists are made only when asked for
(``IngestorService.watched_beamtimes()`` / ``watched_scandirs()``).
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass

logger = logging.getLogger(__name__)

_versions = itertools.count(1)


def next_version() -> int:
    """A number larger than every one handed out before in this process.

    One counter for every watched set of the process, so a new watcher (a restart of
    the service) never repeats a version of the one before.
    """
    return next(_versions)


@dataclass(frozen=True)
class WatchCounts:
    """What is watched, counted: ``version`` changes whenever either set changes."""

    mode: str
    beamtime_files: int
    scan_dirs: int
    version: int

    @classmethod
    def stopped(cls) -> WatchCounts:
        """The counts of a watcher that does not run (nothing watched, version 0)."""
        return cls("stopped", 0, 0, 0)
