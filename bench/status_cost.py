"""Per-update cost of the service's status with many watched directories (bench/run.py detail).

Every status change (every scan) makes a new status snapshot (scingestor/status.py). It
holds counts and a version of what is watched, not the lists (docs/architecture.md,
"Decisions"); this prints what one update costs with the directories of figure 4, and
what making the sorted lists costs, which every update paid before.
"""

from __future__ import annotations

import logging
import time

from scingestor.config import load_config
from scingestor.service import IngestorService

logger = logging.getLogger(__name__)


def status_update_note(config: str, updates: int = 2000) -> str:
    """A details line: µs per status update, and µs for the sorted lists, in this process."""
    service = IngestorService(load_config(config))
    service.start()
    try:
        service.wait_idle(60)  # the start-up jobs (nxsfileinfo import) done: not measured
        watched = service.status().watched_scandir_count
        start = time.perf_counter()
        for _ in range(updates):
            service._publish()  # what every status change runs: counts, compose, compare
        per_update = (time.perf_counter() - start) / updates * 1e6
        rounds = max(1, updates // 20)
        start = time.perf_counter()
        for _ in range(rounds):
            tree = service.watched()  # the copy + sort each update made before
            tuple(sorted(tree.scan_dirs)), tuple(sorted(tree.beamtime_files))
        lists = (time.perf_counter() - start) / rounds * 1e6
    finally:
        service.stop()
    return (f"status update with {watched} watched scan dirs: {per_update:.1f} µs per update; "
            f"the sorted lists (made by every update before, now on demand): {lists:.0f} µs")
