"""The watcher thread: one thread drives :class:`Discovery` from inotify and timers."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Optional

from ..config import IngestorConfig
from .counts import WatchCounts
from .discovery import Discovery, DiscoverySnapshot
from .inotify import Notifier, NotifierError
from .schedule import poll_period
from .sink import DiscoverySink
from .watchset import MODE_INOTIFY

logger = logging.getLogger(__name__)

THREAD_NAME = "scingestor-watch"
_ERROR_PAUSE = 1.0


class Watcher:
    """Watch the configured beamtime dirs; report to ``sink`` (see :class:`Discovery`).

    The thread blocks in ``select`` (inotify mode) or on an event (polling
    mode) until something happens, a periodic job is due, or :meth:`stop`.
    ``on_watched_changed()`` is called from the thread, no lock held, after a step
    that changed the watched beamtime files or scan dirs (:meth:`counts`).
    """

    def __init__(self, cfg: IngestorConfig, sink: DiscoverySink,
                 on_watched_changed: Optional[Callable[[], None]] = None) -> None:
        self.cfg = cfg
        self.sink = sink
        self._on_watched_changed = on_watched_changed
        self._notifier: Optional[Notifier] = None
        self._discovery: Optional[Discovery] = None
        self._thread: Optional[threading.Thread] = None
        self._wake = threading.Event()
        self._stopping = False
        self._rescan_requested = False

    @property
    def thread(self) -> Optional[threading.Thread]:
        """The background thread (``None`` before :meth:`start`)."""
        return self._thread

    def start(self) -> None:
        """Scan everything (lists are reported before this returns), then start the thread."""
        if self._thread is not None:
            raise RuntimeError("Watcher already started")
        notifier = None
        if not self.cfg.poll_only:
            try:
                notifier = Notifier()
            except NotifierError as exc:
                logger.warning("%s; polling every %.2f s instead", exc, poll_period(self.cfg))
        self._notifier = notifier
        self._discovery = Discovery(self.cfg, self.sink, notifier)
        self._discovery.scan_all()
        self._drop_notifier_if_polling()
        snap = self._discovery.snapshot()
        logger.info(
            "Watching %d beamtime file(s), %d scan dir(s), %d list(s) (%s)",
            len(snap.beamtime_files), len(snap.scan_dirs), len(snap.list_files), snap.mode,
        )
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> bool:
        """Wake and join the thread, then remove every watch; True if the thread ended."""
        self._stopping = True
        if self._discovery is not None:
            self._discovery.cancel()
        self._wakeup()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.warning("The watcher thread did not stop within %.1f s", timeout)
                return False
        if self._discovery is not None:
            self._discovery.close()
        if self._notifier is not None:
            self._notifier.close()
            self._notifier = None
        return True

    def snapshot(self) -> DiscoverySnapshot:
        """What is watched right now."""
        if self._discovery is None:
            return DiscoverySnapshot.stopped()
        return self._discovery.snapshot()

    def counts(self) -> WatchCounts:
        """How much is watched and its version, in O(1) (:meth:`Discovery.counts`)."""
        discovery = self._discovery
        return WatchCounts.stopped() if discovery is None else discovery.counts()

    def beamtime_files(self) -> list[str]:
        """Every followed beamtime file, sorted."""
        discovery = self._discovery
        return [] if discovery is None else discovery.beamtime_files()

    def scan_dirs(self) -> list[str]:
        """Every watched scan directory, sorted."""
        discovery = self._discovery
        return [] if discovery is None else discovery.scan_dirs()

    def is_scan_dir(self, path: str) -> bool:
        """True when ``path`` is a watched scan directory (O(1))."""
        discovery = self._discovery
        return discovery is not None and discovery.is_scan_dir(path)

    def rescan(self) -> None:
        """Ask the thread for a full reconciliation with the disk now."""
        self._rescan_requested = True
        self._wakeup()

    def _wakeup(self) -> None:
        self._wake.set()
        notifier = self._notifier
        if notifier is not None:
            notifier.wake()

    def _drop_notifier_if_polling(self) -> None:
        if self._notifier is not None and self._discovery is not None and \
                self._discovery.mode != MODE_INOTIFY:
            self._notifier.close()
            self._notifier = None

    def _run(self) -> None:
        assert self._discovery is not None
        discovery = self._discovery
        version = discovery.counts().version
        while not self._stopping:
            self._wake.clear()
            try:
                self._step(discovery)
                now = discovery.counts().version
                if now != version and not self._stopping:
                    version = now
                    if self._on_watched_changed is not None:
                        self._on_watched_changed()
            except Exception:
                logger.exception("Watcher error; continuing")
                self._wake.wait(_ERROR_PAUSE)
        logger.debug("Watcher thread ends")

    def _step(self, discovery: Discovery) -> None:
        if self._rescan_requested:
            self._rescan_requested = False
            discovery.scan_all()
        self._drop_notifier_if_polling()
        if self._stopping:
            return
        now = time.monotonic()
        deadline = discovery.next_deadline()
        if deadline is not None and deadline <= now:
            discovery.run_due(now)
            return
        timeout = None if deadline is None else deadline - now
        notifier = self._notifier
        if notifier is not None:
            events = notifier.read(timeout)
            if events and not self._stopping:
                discovery.handle(events)
        else:
            self._wake.wait(timeout)
