"""Discovery: beamtime dirs, beamtime files, scan dirs and list files, kept in step with the disk.

:class:`Discovery` composes the parts (docs/architecture.md, "Modules" and "Decisions"):

* :class:`~.watchset.WatchSet`: the inotify watches, or polling;
* :class:`~.beamtimes.BeamtimeDirs` / :class:`~.beamtimes.BeamtimeFiles`: which
  beamtime files are followed;
* :class:`~.scantree.ScanTrees`: the scan directories and lists of each followed
  beamtime (the rules of :mod:`scingestor.tree`);
* :class:`~.schedule.Schedule`: the periodic jobs.

Everything is resolved by looking at the disk (``stat`` / ``os.scandir`` of one
directory), never by trusting an event's kind, so inotify events, periodic
rechecks and the polling fallback share the same code ("the disk decides"):

* an inotify event only marks a directory (or a beamtime / list file) to be
  looked at again; after a batch of events each marked directory is re-listed
  once, new sub-directories are walked, vanished ones are dropped, existing
  subtrees are not re-walked;
* a reconciliation walks the whole tree; the forced kind re-lists every
  directory, the cheap kind (polling) re-lists only directories whose mtime or
  inode changed, and ``stat`` s the known list and beamtime files.

Polling period when inotify is not used: ``min(2 s, positive recheck
intervals)``, at least 50 ms. Symbolic links to directories below a beamtime
dir are not followed (no cycles); beamtime dirs themselves may be links.

Public methods take one lock, so :meth:`Discovery.snapshot` may be called
from any thread while the watcher thread drives the rest. The sink is called
from the driving thread with that lock held: it must not block.
:meth:`Discovery.counts` and :meth:`Discovery.is_scan_dir` take no lock: they
are O(1) and never wait for a walk in progress (the status is composed from
them on every update).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Iterable, Optional

from ..config import IngestorConfig
from .beamtimes import BeamtimeDirs, BeamtimeDirty, BeamtimeUpdate
from .counts import WatchCounts
from .inotify import Event, Notifier
from .scantree import ScanDirty, ScanTrees
from .schedule import Job, Schedule, most_thorough, poll_period
from .sink import DiscoverySink, GuardedSink
from .watchset import MODE_INOTIFY, MODE_POLLING, WatchSet

logger = logging.getLogger(__name__)

__all__ = ["MODE_INOTIFY", "MODE_POLLING", "Discovery", "DiscoverySnapshot", "WatchCounts",
           "poll_period"]


@dataclass(frozen=True)
class DiscoverySnapshot:
    """What is watched right now."""

    mode: str
    beamtime_dirs: tuple[str, ...]
    beamtime_files: tuple[str, ...]
    scan_dirs: tuple[str, ...]
    list_files: tuple[str, ...]
    watches: int

    @classmethod
    def stopped(cls) -> DiscoverySnapshot:
        """The snapshot of a watcher that does not run."""
        return cls("stopped", (), (), (), (), 0)


@dataclass
class _Dirty:
    """What a batch of events asks to look at again."""

    full: bool = False
    beamtimes: BeamtimeDirty = field(default_factory=BeamtimeDirty)
    scans: ScanDirty = field(default_factory=ScanDirty)


class Discovery:
    """Beamtime / scan-dir / list-file tree, reported to ``sink``.

    ``notifier`` is the process' :class:`Notifier`; ``None`` (or
    ``cfg.poll_only``) means polling mode.
    """

    def __init__(
        self, cfg: IngestorConfig, sink: DiscoverySink, notifier: Optional[Notifier] = None
    ) -> None:
        self.cfg = cfg
        self._sink = GuardedSink(sink)
        self._lock = threading.RLock()
        self._cancelled = False
        self._watches = WatchSet(None if cfg.poll_only else notifier, self._to_polling)
        self._beamtimes = BeamtimeDirs(cfg, self._watches, self._stopped)
        self._scans = ScanTrees(cfg, self._watches, self._sink, self._stopped)
        self._schedule = Schedule(cfg, not self._watches.inotify, time.monotonic())

    @property
    def mode(self) -> str:
        """``"inotify"`` or ``"polling"``."""
        return self._watches.mode

    # ------------------------------------------------------------------ public

    def scan_all(self) -> None:
        """Reconcile the whole tree with the disk, listing every directory."""
        with self._lock:
            self._reconcile(force=True)

    def poll(self) -> None:
        """Cheap reconciliation: re-list only directories whose stamp changed."""
        with self._lock:
            self._reconcile(force=False)

    def check_lists(self) -> None:
        """``stat`` every known list file; report those whose stamp changed."""
        with self._lock:
            self._scans.check_lists()

    def handle(self, events: Iterable[Event]) -> None:
        """Apply a batch of inotify events."""
        with self._lock:
            dirty = _Dirty()
            for event in events:
                self._classify(event, dirty)
            if dirty.full:
                self._reconcile(force=True)
                return
            self._follow(self._beamtimes.apply(dirty.beamtimes))
            self._scans.apply(dirty.scans)

    def next_deadline(self) -> Optional[float]:
        """``time.monotonic()`` value of the next periodic job, or ``None``."""
        with self._lock:
            return self._schedule.next_deadline()

    def run_due(self, now: Optional[float] = None) -> None:
        """Run the periodic jobs whose time has come."""
        with self._lock:
            now = time.monotonic() if now is None else now
            due = self._schedule.due(now)
            try:
                job = most_thorough(due)
                if job is Job.FULL:
                    self._reconcile(force=True)
                elif job is Job.POLL:
                    self._reconcile(force=False)
                elif job is Job.LISTS:
                    self._scans.check_lists()
            finally:
                self._schedule.done(time.monotonic(), due)

    def snapshot(self) -> DiscoverySnapshot:
        """A frozen copy of what is watched."""
        with self._lock:
            return DiscoverySnapshot(
                mode=self.mode,
                beamtime_dirs=tuple(self._beamtimes.paths()),
                beamtime_files=tuple(sorted(self._beamtimes.files.followed())),
                scan_dirs=tuple(self._scans.scan_dirs()),
                list_files=tuple(self._scans.list_files()),
                watches=self._watches.count(),
            )

    def counts(self) -> WatchCounts:
        """How many beamtime files and scan dirs are watched, and their version (O(1))."""
        files, scans = self._beamtimes.files, self._scans
        version = max(files.version, scans.version)  # read first: the counts are not older
        return WatchCounts(self.mode, files.followed_count(), scans.scan_dir_count(), version)

    def beamtime_files(self) -> list[str]:
        """Every followed beamtime file, sorted (a copy, made now)."""
        with self._lock:
            return sorted(self._beamtimes.files.followed())

    def scan_dirs(self) -> list[str]:
        """Every watched scan directory, sorted (a copy, made now)."""
        with self._lock:
            return self._scans.scan_dirs()

    def is_scan_dir(self, path: str) -> bool:
        """True when ``path`` is a watched scan directory (O(1))."""
        return self._scans.is_scan_dir(path)

    def cancel(self) -> None:
        """Make a running walk return early (used when stopping)."""
        self._cancelled = True

    def close(self) -> None:
        """Remove every watch; the tree is forgotten without reporting removals."""
        self._cancelled = True
        with self._lock:
            self._watches.close()
            self._beamtimes.close()
            self._scans.close()

    # ---------------------------------------------------------------- internals

    def _stopped(self) -> bool:
        return self._cancelled

    def _to_polling(self, reason: str) -> None:
        logger.warning("inotify cannot be used any more (%s); switching to polling every "
                       "%.2f s", reason, poll_period(self.cfg))
        self._schedule.switch_to_polling(time.monotonic())

    def _follow(self, updates: list[BeamtimeUpdate]) -> None:
        """Drop and build scan trees as the followed beamtimes changed."""
        for update in updates:
            if update.removed is not None:
                self._scans.remove(update.path)
                self._sink.beamtime_removed(update.path)
            if update.added is not None:
                self._sink.beamtime_added(update.added)
                self._scans.add(update.added)

    def _reconcile(self, force: bool) -> None:
        self._scans.begin_pass()
        self._follow(self._beamtimes.reconcile(force))
        if not self._cancelled:
            self._scans.reconcile(force)

    def _classify(self, event: Event, dirty: _Dirty) -> None:
        if event.overflow:
            logger.warning("inotify queue overflow: events were lost, re-scanning")
            dirty.full = True
            return
        for path in self._watches.paths_of(event):
            if not event.name:
                if event.watch_gone:
                    self._beamtimes.mark_directory(path, dirty.beamtimes)
                    self._scans.mark_directory(path, dirty.scans)
                continue
            self._beamtimes.mark_entry(path, event, dirty.beamtimes)
            self._scans.mark_entry(path, event, dirty.scans)
