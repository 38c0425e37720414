"""The service's view of the recent scans: the history, the failed set and the retry command.

:class:`RecentScans` is a part of :class:`scingestor.service.IngestorService` (a
base class, to keep ``service.py`` short): README "What happened to my scans",
docs/tango.md ``RecentIngestions``, ``FailedScans``, ``RetryFailed``. It uses the
service's lock, contexts, processor, list commands and scheduler.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Optional

from .beamtime import ScanDirContext
from .commands import ListCommands, ServiceError
from .config import IngestorConfig
from .failures import FailedSet
from .history import FailedScan, History, IngestionRecord, result_of
from .pipeline import EntryOutcome, ListProcessor


class RecentScans:
    """History and failed set of the service (the attributes are set by the service)."""

    _cfg: IngestorConfig
    _lock: threading.RLock
    _contexts: dict[str, ScanDirContext]
    _processor: Optional[ListProcessor]
    _commands: ListCommands
    _history: History
    _failed: FailedSet
    _schedule: Callable[..., None]
    _publish: Callable[..., None]
    context_for: Callable[[str], ScanDirContext]

    def history(self) -> tuple[IngestionRecord, ...]:
        """The last outcomes (at most 200), newest first; emptied by a restart."""
        return self._history.records()

    def failed_scans(self) -> tuple[FailedScan, ...]:
        """The scans that failed and wait for a retry (or were recorded failed; retry_at 0)."""
        return self._failed.scans()

    def retry_failed(self, line: str = "", scandir: str = "") -> int:
        """Run the failed scan(s) now, ignoring their back-off; returns how many.

        ``line``: a list line or scan name ('' = every failed scan); ``scandir``: the
        scan directory (either path form; '' = any). A scan that is not retried
        automatically (``retry_failed_dataset_ingestion: false``) gets a re-ingest line.
        """
        line = line.strip()
        list_path = self.context_for(scandir).list_path if scandir else ""
        chosen = self._failed.select(line, list_path)
        if line and not chosen:
            raise ServiceError(f"{line!r} is not a failed scan"
                               + (f" of {scandir}" if scandir else ""))
        processor = self._processor
        if processor is None:
            if chosen:
                raise ServiceError("the service is not running")
            return 0
        lists: set[str] = set()
        for scan in chosen:
            with self._lock:
                ctx = self._contexts.get(scan.list_path)
            if ctx is None:
                continue
            if scan.retry_at > 0:  # retried automatically: only its back-off is cleared
                processor.retry_now(scan.list_path, scan.line)
                lists.add(scan.list_path)
            else:  # its failure is final in the ingested list: ask again with a new line
                self._commands.reingest(scan.scan, ctx.scandir)
        self._failed.reschedule((scan.list_path, scan.line) for scan in chosen)
        for path in lists:
            with self._lock:
                ctx = self._contexts.get(path)
            if ctx is not None:
                self._schedule(ctx, delay=0.0)
        self._publish()
        return len(chosen)

    def _record_outcome(self, outcome: EntryOutcome) -> None:
        """Add an outcome to the history and the failed set."""
        ctx, entry = outcome.ctx, outcome.entry
        now = time.time()
        self._history.add(IngestionRecord(
            now, ctx.scandir, ctx.list_path, entry.scanname, entry.line, outcome.pid,
            result_of(not outcome.ok, outcome.action, outcome.datablocks, outcome.thumbnails),
            outcome.datablocks, outcome.thumbnails, outcome.error))
        if outcome.ok:
            self._failed.succeeded(ctx.list_path, entry.line, entry.scanname)
        else:
            will_retry = not outcome.recorded or self._cfg.retry_failed_dataset_ingestion
            retry_at = 0.0
            if will_retry and self._processor is not None:
                retry_at = self._processor.retry_due(ctx.list_path, entry.line) or now
            self._failed.failed(ctx, entry.line, entry.scanname, outcome.error, retry_at)
