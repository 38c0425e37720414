"""Beamtime directories and beamtime files: which beamtimes are followed.

:class:`BeamtimeFiles` decides about one beamtime file (parse, blacklists,
change detection); :class:`BeamtimeDirs` keeps the beamtime directories
(``beamtime_dirs``, the sub-directories of ``beamtime_base_dir``) in step with
the disk and hands each beamtime file it sees to :class:`BeamtimeFiles`. Both
return :class:`BeamtimeUpdate` values; the caller follows or drops the scan
trees. The rules are those of :mod:`scingestor.tree`.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from .. import tree
from ..beamtime import (
    Beamtime,
    BeamtimeError,
    BlacklistReader,
    is_beamtime_file_name,
    load_beamtime,
)
from ..config import IngestorConfig
from .counts import next_version
from .inotify import IN_MODIFY, Event
from .stamps import Stamp, WarnOnce, dir_stamp, file_stamp, inode, settled
from .watchset import WatchSet

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BeamtimeUpdate:
    """A change of what is followed: ``removed`` first, then ``added`` (either may be None)."""

    path: str
    removed: Optional[Beamtime] = None
    added: Optional[Beamtime] = None


@dataclass
class _Known:
    stamp: Stamp
    beamtime: Optional[Beamtime]  # None: unparsable or in a blacklisted directory
    followed: bool


class BeamtimeFiles:
    """The beamtime files seen so far, followed or rejected."""

    def __init__(self, cfg: IngestorConfig) -> None:
        self._cfg = cfg
        self._blacklist = BlacklistReader(cfg.beamtimeid_blacklist_file)
        self._known: dict[str, _Known] = {}
        self._followed_count = 0
        #: changes whenever a file is followed or dropped (:func:`.counts.next_version`)
        self.version = 0
        self._warn = WarnOnce(logger)

    def followed(self) -> dict[str, Beamtime]:
        """Path -> beamtime of every followed beamtime file."""
        return {p: k.beamtime for p, k in self._known.items() if k.followed and k.beamtime}

    def followed_count(self) -> int:
        """How many beamtime files are followed (O(1))."""
        return self._followed_count

    def is_followed(self, path: str) -> bool:
        """True when the beamtime file at ``path`` is followed."""
        known = self._known.get(path)
        return known is not None and known.followed

    def known_in(self, directory: str) -> list[str]:
        """Paths of the files seen (followed or not) directly in ``directory``."""
        return [path for path in self._known if os.path.dirname(path) == directory]

    def update(self, path: str, stamp: Optional[Stamp], force: bool = False) -> BeamtimeUpdate:
        """The file at ``path`` now has ``stamp`` (``None``: it is gone).

        ``force`` re-applies the blacklists to a rejected file whose content did
        not change (the id blacklist file may have changed).
        """
        known = self._known.get(path)
        if stamp is None:
            return self.forget(path)
        if known is not None and known.stamp == stamp:
            if known.followed or known.beamtime is None or not force:
                return BeamtimeUpdate(path)
            if self._excluded(known.beamtime):
                return BeamtimeUpdate(path)
            return self._follow(path, known.beamtime, stamp)
        if tree.beamtime_dir_blacklisted(self._cfg, os.path.dirname(path)):
            self._store(path, _Known(stamp, None, followed=False))
            return BeamtimeUpdate(path)
        try:
            beamtime = load_beamtime(path)
        except BeamtimeError as exc:
            self._warn(f"bt:{path}:{stamp}", f"{path} cannot be watched: {exc}")
            if known is not None and known.followed:
                known.stamp = stamp  # keep following the last good content
            else:
                self._store(path, _Known(stamp, None, followed=False))
            return BeamtimeUpdate(path)
        removed = None
        if known is not None and known.followed:
            assert known.beamtime is not None
            if dict(known.beamtime.metadata) == dict(beamtime.metadata):
                known.stamp = stamp
                return BeamtimeUpdate(path)
            logger.info("Beamtime file %s changed", path)
            removed = self.forget(path).removed
        if self._excluded(beamtime):
            self._store(path, _Known(stamp, beamtime, followed=False))
            return BeamtimeUpdate(path, removed=removed)
        added = self._follow(path, beamtime, stamp).added
        return BeamtimeUpdate(path, removed=removed, added=added)

    def resolve(self, path: str, quiet_if_empty: bool = False) -> BeamtimeUpdate:
        """Look at the file at ``path`` again.

        With ``quiet_if_empty`` an empty new file is left for later: it was just
        created and its content comes with the close-write event.
        """
        try:
            st = os.stat(path)
            if not stat.S_ISREG(st.st_mode):
                raise FileNotFoundError(path)
        except (OSError, ValueError):
            return self.forget(path)
        if quiet_if_empty and st.st_size == 0 and not self.is_followed(path):
            return BeamtimeUpdate(path)
        return self.update(path, file_stamp(st))

    def forget(self, path: str) -> BeamtimeUpdate:
        """Stop following (and forget) the file at ``path``."""
        known = self._store(path, None)
        if known is None or not known.followed or known.beamtime is None:
            return BeamtimeUpdate(path)
        logger.info("Beamtime %s: stopped following %s", known.beamtime.beamtime_id, path)
        return BeamtimeUpdate(path, removed=known.beamtime)

    def _follow(self, path: str, beamtime: Beamtime, stamp: Stamp) -> BeamtimeUpdate:
        self._store(path, _Known(stamp, beamtime, followed=True))
        logger.info("Beamtime %s: following %s", beamtime.beamtime_id, path)
        return BeamtimeUpdate(path, added=beamtime)

    def _store(self, path: str, known: Optional[_Known]) -> Optional[_Known]:
        """Keep ``known`` for ``path`` (``None``: forget it); returns what was kept before."""
        old = self._known.pop(path, None) if known is None else self._known.get(path)
        if known is not None:
            self._known[path] = known
        was, now = old is not None and old.followed, known is not None and known.followed
        if was != now:
            self._followed_count += 1 if now else -1
            self.version = next_version()
        return old

    def _excluded(self, beamtime: Beamtime) -> bool:
        return tree.beamtime_excluded(self._cfg, beamtime, self._blacklist)


@dataclass
class _BeamtimeDir:
    path: str
    configured: bool
    stamp: Optional[Stamp] = None
    listed_at: float = 0.0
    watched: bool = False
    ancestor: str = ""  # watched nearest existing ancestor while the dir is missing


@dataclass
class BeamtimeDirty:
    """What a batch of events asks :class:`BeamtimeDirs` to look at again."""

    base: bool = False
    dirs: set[str] = field(default_factory=set)
    files: dict[str, bool] = field(default_factory=dict)  # path -> only created


class BeamtimeDirs:
    """The beamtime directories, watched through ``watches``, and their beamtime files."""

    def __init__(
        self,
        cfg: IngestorConfig,
        watches: WatchSet,
        stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self._cfg = cfg
        self._watches = watches
        self._stop = stop
        self.files = BeamtimeFiles(cfg)
        self._warn = WarnOnce(logger)
        self._base = tree.base_dir(cfg)
        self._base_watched = False
        self._dirs: dict[str, _BeamtimeDir] = {}
        self._waiting: dict[str, set[str]] = {}  # watched ancestor -> missing beamtime dirs
        for raw in cfg.beamtime_dirs:
            try:
                path = tree.beamtime_dir_path(raw)
            except ValueError as exc:
                self._warn(repr(raw), str(exc))
                continue
            self._dirs.setdefault(path, _BeamtimeDir(path, configured=True))

    def paths(self) -> list[str]:
        """Every beamtime directory, sorted."""
        return sorted(self._dirs)

    def reconcile(self, force: bool) -> list[BeamtimeUpdate]:
        """Bring the base dir, every beamtime dir and its beamtime files in line with the disk.

        ``force`` lists every directory; otherwise only those whose stamp changed.
        """
        updates = self._sync_base()
        for btdir in list(self._dirs.values()):
            if self._stop():
                break
            updates += self._sync_dir(btdir, force)
        return updates

    # ----------------------------------------------------------------- events

    def mark_directory(self, path: str, dirty: BeamtimeDirty) -> None:
        """The watch on ``path`` itself went away or was moved."""
        dirty.dirs.update(self._waiting.get(path, ()))
        if path == self._base:
            dirty.base = True
        if path in self._dirs:
            dirty.dirs.add(path)

    def mark_entry(self, directory: str, event: Event, dirty: BeamtimeDirty) -> None:
        """Something happened to the entry ``event.name`` of the watched ``directory``."""
        structural = event.created or event.deleted
        if event.created and event.is_dir:
            dirty.dirs.update(self._waiting.get(directory, ()))
        if directory == self._base and event.is_dir and structural:
            dirty.base = True
        if directory in self._dirs and not event.is_dir and \
                is_beamtime_file_name(self._cfg, event.name) and not event.mask & IN_MODIFY:
            only_created = event.created and not event.deleted and not event.written
            path = os.path.join(directory, event.name)
            dirty.files[path] = dirty.files.get(path, True) and only_created

    def apply(self, dirty: BeamtimeDirty) -> list[BeamtimeUpdate]:
        """Look again at what ``dirty`` names."""
        updates = self._sync_base() if dirty.base else []
        for path in sorted(dirty.dirs):
            btdir = self._dirs.get(path)
            if btdir is not None:
                updates += self._sync_dir(btdir, force=True)
        for path, only_created in sorted(dirty.files.items()):
            if os.path.dirname(path) in self._dirs:
                updates.append(self.files.resolve(path, quiet_if_empty=only_created))
        return updates

    def close(self) -> None:
        """Forget the watches (the :class:`WatchSet` is closed by its owner)."""
        self._base_watched = False
        self._waiting.clear()
        for btdir in self._dirs.values():
            btdir.watched, btdir.ancestor = False, ""

    # ------------------------------------------------------------- base dir

    def _sync_base(self) -> list[BeamtimeUpdate]:
        if not self._base:
            return []
        try:
            wanted = set(tree.base_beamtime_dirs(self._base))
        except (FileNotFoundError, NotADirectoryError):
            wanted = None
        except (OSError, ValueError) as exc:
            self._warn(self._base, f"Directory {self._base} cannot be read: {exc}")
            wanted = None
        if wanted is None:
            if self._base_watched:
                self._watches.release(self._base)
                self._base_watched = False
            wanted = set()
        else:
            ino = inode(self._base) or 0
            if not self._base_watched:
                self._base_watched = self._watches.acquire(self._base, ino)
            else:
                self._watches.rewatch(self._base, ino)
        updates: list[BeamtimeUpdate] = []
        for path, btdir in list(self._dirs.items()):
            if not btdir.configured and path not in wanted:
                updates += self._remove_dir(btdir)
        for path in sorted(wanted - set(self._dirs)):
            btdir = self._dirs[path] = _BeamtimeDir(path, configured=False)
            logger.info("New beamtime directory %s", path)
            updates += self._sync_dir(btdir, force=True)
        return updates

    def _remove_dir(self, btdir: _BeamtimeDir) -> list[BeamtimeUpdate]:
        updates = [self.files.forget(path) for path in self.files.known_in(btdir.path)]
        if btdir.watched:
            self._watches.release(btdir.path)
            btdir.watched = False
        if not btdir.configured:
            self._dirs.pop(btdir.path, None)
        return updates

    # -------------------------------------------------------- beamtime dirs

    def _sync_dir(self, btdir: _BeamtimeDir, force: bool) -> list[BeamtimeUpdate]:
        path = btdir.path
        try:
            st = os.stat(path)
            if not stat.S_ISDIR(st.st_mode):
                raise NotADirectoryError(path)
        except (FileNotFoundError, NotADirectoryError):
            updates = [self.files.forget(file) for file in self.files.known_in(path)]
            if btdir.watched:
                self._watches.release(path)
                btdir.watched = False
            btdir.stamp = None
            if btdir.configured:
                self._watch_ancestor(btdir)
                if inode(path) is not None:
                    # created before the ancestor's watch was in place: no event will tell
                    updates += self._sync_dir(btdir, force=True)
            return updates
        except (OSError, ValueError) as exc:
            self._warn(path, f"Beamtime directory {path} cannot be used: {exc}")
            return []
        self._set_ancestor(btdir, "")
        if not btdir.watched:
            btdir.watched = self._watches.acquire(path, st.st_ino)
        else:
            self._watches.rewatch(path, st.st_ino)
        stamp = dir_stamp(st)
        if not force and settled(stamp, btdir.stamp, btdir.listed_at):
            return [self.files.resolve(file) for file in self.files.known_in(path)]
        btdir.listed_at = time.time()
        btdir.stamp = stamp
        try:
            found = tree.beamtime_files(self._cfg, path)
        except (OSError, ValueError) as exc:
            self._warn(path, f"Beamtime directory {path} cannot be read: {exc}")
            return []
        updates = [
            self.files.forget(file) for file in self.files.known_in(path) if file not in found
        ]
        for file in sorted(found):
            updates.append(self.files.update(file, file_stamp(found[file]), force=force))
        return updates

    def _watch_ancestor(self, btdir: _BeamtimeDir) -> None:
        """Watch the nearest existing ancestor of a missing beamtime dir for its creation."""
        ancestor = os.path.dirname(btdir.path)
        while ancestor != os.path.dirname(ancestor) and inode(ancestor) is None:
            ancestor = os.path.dirname(ancestor)
        self._set_ancestor(btdir, ancestor if self._watches.inotify else "")

    def _set_ancestor(self, btdir: _BeamtimeDir, ancestor: str) -> None:
        if btdir.ancestor == ancestor:
            return
        if btdir.ancestor:
            self._watches.release(btdir.ancestor)
            users = self._waiting.get(btdir.ancestor, set())
            users.discard(btdir.path)
            if not users:
                self._waiting.pop(btdir.ancestor, None)
        btdir.ancestor = ""
        if ancestor and self._watches.acquire(ancestor, inode(ancestor) or 0):
            btdir.ancestor = ancestor
            self._waiting.setdefault(ancestor, set()).add(btdir.path)
