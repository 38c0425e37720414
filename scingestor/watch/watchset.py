"""The inotify watch registry: path <-> watch descriptor, users per path, fall-back to polling.

Several users (a beamtime dir that is also a scan dir, two beamtimes sharing a
directory) may need the same directory: the kernel watch is added for the
first and removed with the last. In polling mode (no notifier, or after the
watch limit was reached) the registry only counts users and no descriptor is
held.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Optional

from .inotify import DIRECTORY_MASK, IN_IGNORED, Event, Notifier, WatchError
from .stamps import WarnOnce

logger = logging.getLogger(__name__)

MODE_INOTIFY = "inotify"
MODE_POLLING = "polling"


@dataclass
class _Watch:
    users: int = 0
    wd: Optional[int] = None
    ino: int = 0


class WatchSet:
    """Directory watches on one :class:`Notifier` (``None``: polling mode).

    ``on_polling(reason)`` is called once when inotify cannot be used any more
    (the watch limit was reached); every descriptor is dropped by then.
    """

    def __init__(
        self,
        notifier: Optional[Notifier],
        on_polling: Optional[Callable[[str], None]] = None,
    ) -> None:
        self._notifier = notifier
        self._on_polling = on_polling
        self.mode = MODE_INOTIFY if notifier is not None else MODE_POLLING
        self._watches: dict[str, _Watch] = {}
        self._wd_paths: dict[int, set[str]] = {}
        self._warn = WarnOnce(logger)

    @property
    def inotify(self) -> bool:
        """True while kernel watches are used."""
        return self.mode == MODE_INOTIFY

    def count(self) -> int:
        """Number of kernel watches held."""
        return sum(1 for watch in self._watches.values() if watch.wd is not None)

    def users(self, path: str) -> int:
        """Number of users of the watch on ``path``."""
        watch = self._watches.get(path)
        return watch.users if watch is not None else 0

    def acquire(self, path: str, ino: int) -> bool:
        """One more user of the watch on ``path`` (directory inode ``ino``); False if it is gone."""
        watch = self._watches.get(path)
        if watch is None:
            watch = self._watches[path] = _Watch()
        if watch.wd is None and self.inotify:
            if not self._add_kernel_watch(path, watch, ino):
                if watch.users == 0:
                    del self._watches[path]
                return False
        watch.users += 1
        return True

    def release(self, path: str) -> None:
        """One user less; the kernel watch goes with the last user."""
        watch = self._watches.get(path)
        if watch is None:
            return
        watch.users -= 1
        if watch.users > 0:
            return
        del self._watches[path]
        self._forget_wd(path, watch)

    def rewatch(self, path: str, ino: int) -> None:
        """Make the watch on ``path`` follow the directory now at that path (inode ``ino``)."""
        watch = self._watches.get(path)
        if watch is None or not self.inotify:
            return
        if watch.wd is not None and watch.ino == ino:
            return
        self._forget_wd(path, watch)
        self._add_kernel_watch(path, watch, ino)

    def lost(self, path: str) -> bool:
        """True when ``path`` has users but its kernel watch went away (inotify mode)."""
        watch = self._watches.get(path)
        return self.inotify and watch is not None and watch.wd is None

    def paths_of(self, event: Event) -> set[str]:
        """The watched paths an event is about; an ``IN_IGNORED`` event unbinds its descriptor."""
        paths = self._wd_paths.get(event.wd)
        if not paths:
            return set()
        if event.mask & IN_IGNORED:
            self._wd_paths.pop(event.wd, None)
            for path in paths:
                watch = self._watches.get(path)
                if watch is not None and watch.wd == event.wd:
                    watch.wd = None
        return set(paths)

    def close(self) -> None:
        """Remove every kernel watch and forget every user."""
        if self._notifier is not None:
            for watch in self._watches.values():
                if watch.wd is not None:
                    self._notifier.remove_watch(watch.wd)
        self._watches.clear()
        self._wd_paths.clear()
        self._notifier = None

    def _add_kernel_watch(self, path: str, watch: _Watch, ino: int) -> bool:
        assert self._notifier is not None
        try:
            wd = self._notifier.add_watch(path, DIRECTORY_MASK)
        except WatchError as exc:
            if exc.missing:
                return False
            if exc.limit_reached:
                self._to_polling(f"{exc} (raise fs.inotify.max_user_watches)")
            else:
                self._warn(path, f"Directory {path} cannot be watched: {exc.reason}")
            return True
        watch.wd, watch.ino = wd, ino
        self._wd_paths.setdefault(wd, set()).add(path)
        return True

    def _forget_wd(self, path: str, watch: _Watch) -> None:
        if watch.wd is None:
            return
        paths = self._wd_paths.get(watch.wd)
        if paths is not None:
            paths.discard(path)
            if not paths:
                del self._wd_paths[watch.wd]
        if self._notifier is not None:
            self._notifier.remove_watch(watch.wd)
        watch.wd = None

    def _to_polling(self, reason: str) -> None:
        if not self.inotify:
            return
        for path, watch in self._watches.items():
            self._forget_wd(path, watch)
        self._wd_paths.clear()
        self._notifier = None
        self.mode = MODE_POLLING
        if self._on_polling is not None:
            self._on_polling(reason)
