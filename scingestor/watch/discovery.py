"""The in-memory tree of beamtime dirs, beamtime files, scan dirs and list files.

:class:`Discovery` keeps that tree in step with the disk. Everything it learns
is resolved by looking at the disk (``stat`` / ``os.scandir`` of one
directory), never by trusting an event's kind, so inotify events, periodic
rechecks and the polling fallback share the same code:

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
from any thread while the watcher thread drives the rest. Sink methods are
called from the driving thread with that lock held: they must not block.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Protocol

from ..beamtime import (
    Beamtime,
    BeamtimeError,
    BlacklistReader,
    CorePaths,
    ScanDirContext,
    in_scandir_blacklist,
    is_beamtime_file_name,
    is_blacklisted,
    list_file_name,
    load_beamtime,
    scandir_context,
)
from ..config import IngestorConfig
from .inotify import DIRECTORY_MASK, IN_IGNORED, IN_MODIFY, Event, Notifier, WatchError

logger = logging.getLogger(__name__)

MODE_INOTIFY = "inotify"
MODE_POLLING = "polling"

#: A directory whose mtime is younger than this (relative to when it was
#: listed) is listed again at the next cheap poll: coarse timestamps could hide
#: a second change within the same tick.
_SETTLE_SECONDS = 2.0
_MAX_POLL_PERIOD = 2.0
_MIN_POLL_PERIOD = 0.05

_Stamp = tuple  # (mtime_ns, size, inode) of a file, (mtime_ns, inode) of a directory


class DiscoverySink(Protocol):
    """What :class:`Discovery` reports to (methods must not block for long)."""

    def beamtime_added(self, bt: Beamtime) -> None: ...

    def beamtime_removed(self, path: str) -> None: ...

    def list_found(self, ctx: ScanDirContext) -> None: ...

    def list_changed(self, ctx: ScanDirContext) -> None: ...

    def list_removed(self, ctx: ScanDirContext) -> None: ...


@dataclass(frozen=True)
class DiscoverySnapshot:
    """What is watched right now."""

    mode: str
    beamtime_dirs: tuple[str, ...]
    beamtime_files: tuple[str, ...]
    scan_dirs: tuple[str, ...]
    list_files: tuple[str, ...]
    watches: int


def poll_period(cfg: IngestorConfig) -> float:
    """Seconds between cheap reconciliations when inotify is not used."""
    intervals = [
        float(value)
        for value in (cfg.recheck_beamtime_file_interval, cfg.recheck_dataset_list_interval)
        if value and value > 0
    ]
    return max(_MIN_POLL_PERIOD, min([_MAX_POLL_PERIOD, *intervals]))


def _file_stamp(st: os.stat_result) -> _Stamp:
    return (st.st_mtime_ns, st.st_size, st.st_ino)


@dataclass
class _Watch:
    users: int = 0
    wd: Optional[int] = None
    ino: int = 0


@dataclass(eq=False)
class _Node:
    """One scan directory of one beamtime."""

    owner: _Tracked
    path: str
    budget: int
    parent: Optional[_Node]
    children: dict[str, _Node] = field(default_factory=dict)
    ctx: Optional[ScanDirContext] = None
    list_stamp: Optional[_Stamp] = None
    dir_stamp: Optional[_Stamp] = None
    listed_at: float = 0.0
    generation: int = 0
    attached: bool = True

    @property
    def list_file(self) -> str:
        return os.path.join(self.path, self.owner.list_name)

    def settled(self, stamp: _Stamp) -> bool:
        """True when the last listing is known to reflect directory stamp ``stamp``."""
        return stamp == self.dir_stamp and self.listed_at - stamp[0] / 1e9 > _SETTLE_SECONDS


@dataclass(eq=False)
class _Tracked:
    """One beamtime file that is being followed."""

    beamtime: Beamtime
    stamp: _Stamp
    core: CorePaths
    list_name: str
    root: Optional[_Node] = None


@dataclass
class _Rejected:
    stamp: _Stamp
    beamtime: Optional[Beamtime]  # parsed but blacklisted; None when unparsable


@dataclass
class _BeamtimeDir:
    path: str
    configured: bool
    dir_stamp: Optional[_Stamp] = None
    listed_at: float = 0.0
    watched: bool = False
    ancestor: str = ""  # watched nearest existing ancestor while the dir is missing


@dataclass
class _Dirty:
    """What a batch of events asks to look at again."""

    full: bool = False
    base: bool = False
    beamtime_dirs: set[str] = field(default_factory=set)
    beamtime_files: dict[str, bool] = field(default_factory=dict)  # path -> only created
    nodes: set[str] = field(default_factory=set)
    lists: set[str] = field(default_factory=set)


class Discovery:
    """Beamtime / scan-dir / list-file tree, reported to ``sink``.

    ``notifier`` is the process' :class:`Notifier`; ``None`` (or
    ``cfg.poll_only``) means polling mode.
    """

    def __init__(
        self, cfg: IngestorConfig, sink: Any, notifier: Optional[Notifier] = None
    ) -> None:
        self.cfg = cfg
        self.sink = sink
        self._notifier = None if cfg.poll_only else notifier
        self.mode = MODE_INOTIFY if self._notifier is not None else MODE_POLLING
        self._lock = threading.RLock()
        self._cancelled = False
        self._base = os.path.abspath(cfg.beamtime_base_dir) if cfg.beamtime_base_dir else ""
        self._base_watched = False
        self._warned: set[tuple[str, str]] = set()
        self._btdirs: dict[str, _BeamtimeDir] = {}
        self._waiting: dict[str, set[str]] = {}  # watched ancestor -> missing beamtime dirs
        for raw in cfg.beamtime_dirs:
            path = self._absolute(raw)
            if path and path not in self._btdirs:
                self._btdirs[path] = _BeamtimeDir(path, configured=True)
        self._tracked: dict[str, _Tracked] = {}
        self._rejected: dict[str, _Rejected] = {}
        self._nodes_at: dict[str, list[_Node]] = {}
        self._watches: dict[str, _Watch] = {}
        self._wd_paths: dict[int, set[str]] = {}
        self._blacklist = BlacklistReader(cfg.beamtimeid_blacklist_file)
        self._generation = 0
        self._deadlines: dict[str, float] = {}
        self._schedule(time.monotonic())

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
            for node in self._all_nodes():
                if self._cancelled:
                    return
                if node.attached and node.ctx is not None:
                    self._check_list(node)

    def handle(self, events: Iterable[Event]) -> None:
        """Apply a batch of inotify events."""
        with self._lock:
            dirty = _Dirty()
            for event in events:
                self._classify(event, dirty)
            self._apply(dirty)

    def next_deadline(self) -> Optional[float]:
        """``time.monotonic()`` value of the next periodic job, or ``None``."""
        with self._lock:
            return min(self._deadlines.values()) if self._deadlines else None

    def run_due(self, now: Optional[float] = None) -> None:
        """Run the periodic jobs whose time has come."""
        with self._lock:
            now = time.monotonic() if now is None else now
            due = {name for name, when in self._deadlines.items() if when <= now}
            try:
                if "full" in due:
                    self._reconcile(force=True)
                elif "poll" in due:
                    self._reconcile(force=False)
                elif "lists" in due:
                    self.check_lists()
            finally:
                self._schedule(time.monotonic(), due)

    def snapshot(self) -> DiscoverySnapshot:
        """A frozen copy of what is watched."""
        with self._lock:
            nodes = list(self._all_nodes())
            return DiscoverySnapshot(
                mode=self.mode,
                beamtime_dirs=tuple(sorted(self._btdirs)),
                beamtime_files=tuple(sorted(self._tracked)),
                scan_dirs=tuple(sorted({node.path for node in nodes})),
                list_files=tuple(sorted(node.ctx.list_path for node in nodes if node.ctx)),
                watches=sum(1 for watch in self._watches.values() if watch.wd is not None),
            )

    def cancel(self) -> None:
        """Make a running walk return early (used when stopping)."""
        self._cancelled = True

    def close(self) -> None:
        """Remove every watch; the tree is forgotten without reporting removals."""
        self._cancelled = True
        with self._lock:
            if self._notifier is not None:
                for watch in self._watches.values():
                    if watch.wd is not None:
                        self._notifier.remove_watch(watch.wd)
            self._watches.clear()
            self._wd_paths.clear()
            self._notifier = None

    # --------------------------------------------------------------- schedule

    def _schedule(self, now: float, done: Optional[set[str]] = None) -> None:
        intervals = {
            "full": self.cfg.recheck_beamtime_file_interval,
            "lists": self.cfg.recheck_dataset_list_interval,
            "poll": poll_period(self.cfg) if self.mode == MODE_POLLING else 0,
        }
        for name, interval in intervals.items():
            if not interval or interval <= 0:
                self._deadlines.pop(name, None)
            elif done is None or name in done or name not in self._deadlines:
                self._deadlines[name] = now + float(interval)
        if done and "full" in done:
            # a full reconciliation also covers the cheaper jobs
            for name in ("poll", "lists"):
                if name in self._deadlines:
                    self._deadlines[name] = now + float(intervals[name])

    # ------------------------------------------------------------ reporting

    def _emit(self, method: str, arg: Any) -> None:
        try:
            getattr(self.sink, method)(arg)
        except Exception:
            logger.exception("Discovery sink %s(%r) failed", method, arg)

    def _warn_once(self, key: str, text: str) -> None:
        item = (key, text)
        if item not in self._warned:
            self._warned.add(item)
            logger.warning("%s", text)

    def _absolute(self, raw: str) -> str:
        try:
            if "\0" in raw:
                raise ValueError("embedded null byte")
            return os.path.abspath(raw)
        except (ValueError, TypeError) as exc:
            self._warn_once(repr(raw), f"Beamtime directory {raw!r} cannot be used: {exc}")
            return ""

    # ---------------------------------------------------------------- watches

    def _acquire(self, path: str, ino: int) -> bool:
        """One more user of the watch on ``path``; False if the path is gone."""
        watch = self._watches.get(path)
        if watch is None:
            watch = self._watches[path] = _Watch()
        if watch.wd is None and self.mode == MODE_INOTIFY:
            if not self._add_kernel_watch(path, watch, ino):
                if watch.users == 0:
                    del self._watches[path]
                return False
        watch.users += 1
        return True

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
                self._warn_once(path, f"Directory {path} cannot be watched: {exc.reason}")
            return True
        watch.wd, watch.ino = wd, ino
        self._wd_paths.setdefault(wd, set()).add(path)
        return True

    def _release(self, path: str) -> None:
        watch = self._watches.get(path)
        if watch is None:
            return
        watch.users -= 1
        if watch.users > 0:
            return
        del self._watches[path]
        self._forget_wd(path, watch)

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

    def _rewatch(self, path: str, ino: int) -> None:
        """Make the watch on ``path`` follow the directory now at that path."""
        watch = self._watches.get(path)
        if watch is None or self.mode != MODE_INOTIFY:
            return
        if watch.wd is not None and watch.ino == ino:
            return
        self._forget_wd(path, watch)
        self._add_kernel_watch(path, watch, ino)

    def _to_polling(self, reason: str) -> None:
        if self.mode == MODE_POLLING:
            return
        logger.warning("inotify cannot be used any more (%s); switching to polling every "
                       "%.2f s", reason, poll_period(self.cfg))
        for path, watch in self._watches.items():
            self._forget_wd(path, watch)
        self._wd_paths.clear()
        self._notifier = None
        self.mode = MODE_POLLING
        self._schedule(time.monotonic())

    # ----------------------------------------------------------------- events

    def _classify(self, event: Event, dirty: _Dirty) -> None:
        if event.overflow:
            logger.warning("inotify queue overflow: events were lost, re-scanning")
            dirty.full = True
            return
        paths = self._wd_paths.get(event.wd)
        if not paths:
            return
        if event.mask & IN_IGNORED:
            self._wd_paths.pop(event.wd, None)
            for path in paths:
                watch = self._watches.get(path)
                if watch is not None and watch.wd == event.wd:
                    watch.wd = None
        for path in list(paths):
            if not event.name:
                if event.watch_gone:
                    self._mark_directory(path, dirty)
                continue
            self._classify_entry(path, event, dirty)

    def _mark_directory(self, path: str, dirty: _Dirty) -> None:
        dirty.beamtime_dirs.update(self._waiting.get(path, ()))
        if path == self._base:
            dirty.base = True
        if path in self._btdirs:
            dirty.beamtime_dirs.add(path)
        if path in self._nodes_at:
            dirty.nodes.add(path)

    def _classify_entry(self, directory: str, event: Event, dirty: _Dirty) -> None:
        name = event.name
        full = os.path.join(directory, name)
        structural = event.created or event.deleted
        if event.created and event.is_dir:
            dirty.beamtime_dirs.update(self._waiting.get(directory, ()))
        if directory == self._base and event.is_dir and structural:
            dirty.base = True
        if directory in self._btdirs and not event.is_dir and \
                is_beamtime_file_name(self.cfg, name) and not event.mask & IN_MODIFY:
            only_created = event.created and not event.deleted and not event.written
            dirty.beamtime_files[full] = dirty.beamtime_files.get(full, True) and only_created
        for node in self._nodes_at.get(directory, ()):
            if event.is_dir:
                if structural:
                    dirty.nodes.add(directory)
            elif name == node.owner.list_name:
                if structural:
                    dirty.nodes.add(directory)
                else:
                    dirty.lists.add(directory)

    def _apply(self, dirty: _Dirty) -> None:
        if dirty.full:
            self._reconcile(force=True)
            return
        if dirty.base:
            self._sync_base()
        for path in sorted(dirty.beamtime_dirs):
            btdir = self._btdirs.get(path)
            if btdir is not None:
                self._sync_beamtime_dir(btdir, force=True)
        for path, only_created in sorted(dirty.beamtime_files.items()):
            btdir = self._btdirs.get(os.path.dirname(path))
            if btdir is not None:
                self._resolve_beamtime_file(path, quiet_if_empty=only_created)
        for path in sorted(dirty.nodes):
            for node in list(self._nodes_at.get(path, ())):
                if node.attached:
                    self._sync_node(node, force=True)
        for path in sorted(dirty.lists - dirty.nodes):
            for node in list(self._nodes_at.get(path, ())):
                if node.attached and node.ctx is not None:
                    self._check_list(node)

    # ---------------------------------------------------------- reconciling

    def _reconcile(self, force: bool) -> None:
        self._generation += 1
        self._sync_base()
        for btdir in list(self._btdirs.values()):
            if self._cancelled:
                return
            self._sync_beamtime_dir(btdir, force)
        for tracked in list(self._tracked.values()):
            stack = [tracked.root] if tracked.root is not None else []
            while stack and not self._cancelled:
                node = stack.pop()
                if not node.attached or node.generation == self._generation:
                    continue
                self._sync_node(node, force)
                if node.attached:
                    stack.extend(
                        child for _, child in sorted(node.children.items(), reverse=True)
                        if child.generation != self._generation
                    )

    def _sync_base(self) -> None:
        if not self._base:
            return
        names = self._list_subdirs(self._base)
        if names is None:
            if self._base_watched:
                self._release(self._base)
                self._base_watched = False
            wanted: set[str] = set()
        else:
            ino = _inode(self._base) or 0
            if not self._base_watched:
                self._base_watched = self._acquire(self._base, ino)
            else:
                self._rewatch(self._base, ino)
            wanted = {os.path.join(self._base, name) for name in names}
        for path, btdir in list(self._btdirs.items()):
            if not btdir.configured and path not in wanted:
                self._remove_beamtime_dir(btdir)
        for path in sorted(wanted - set(self._btdirs)):
            btdir = self._btdirs[path] = _BeamtimeDir(path, configured=False)
            logger.info("New beamtime directory %s", path)
            self._sync_beamtime_dir(btdir, force=True)

    def _list_subdirs(self, path: str) -> Optional[list[str]]:
        try:
            with os.scandir(path) as entries:
                return [entry.name for entry in entries if _is_dir(entry, follow=True)]
        except (FileNotFoundError, NotADirectoryError):
            return None
        except (OSError, ValueError) as exc:
            self._warn_once(path, f"Directory {path} cannot be read: {exc}")
            return None

    def _watch_ancestor(self, btdir: _BeamtimeDir) -> None:
        """Watch the nearest existing ancestor of a missing beamtime dir for its creation."""
        ancestor = os.path.dirname(btdir.path)
        while ancestor != os.path.dirname(ancestor) and _inode(ancestor) is None:
            ancestor = os.path.dirname(ancestor)
        self._set_ancestor(btdir, ancestor if self.mode == MODE_INOTIFY else "")

    def _set_ancestor(self, btdir: _BeamtimeDir, ancestor: str) -> None:
        if btdir.ancestor == ancestor:
            return
        if btdir.ancestor:
            self._release(btdir.ancestor)
            users = self._waiting.get(btdir.ancestor, set())
            users.discard(btdir.path)
            if not users:
                self._waiting.pop(btdir.ancestor, None)
        btdir.ancestor = ""
        if ancestor and self._acquire(ancestor, _inode(ancestor) or 0):
            btdir.ancestor = ancestor
            self._waiting.setdefault(ancestor, set()).add(btdir.path)

    def _remove_beamtime_dir(self, btdir: _BeamtimeDir) -> None:
        for path in [p for p in self._tracked if os.path.dirname(p) == btdir.path]:
            self._remove_beamtime(path)
        for path in [p for p in self._rejected if os.path.dirname(p) == btdir.path]:
            del self._rejected[path]
        if btdir.watched:
            self._release(btdir.path)
            btdir.watched = False
        if not btdir.configured:
            self._btdirs.pop(btdir.path, None)

    def _sync_beamtime_dir(self, btdir: _BeamtimeDir, force: bool) -> None:
        path = btdir.path
        try:
            st = os.stat(path)
            if not stat.S_ISDIR(st.st_mode):
                raise NotADirectoryError(path)
        except (FileNotFoundError, NotADirectoryError):
            for file in [p for p in self._tracked if os.path.dirname(p) == path]:
                self._remove_beamtime(file)
            if btdir.watched:
                self._release(path)
                btdir.watched = False
            btdir.dir_stamp = None
            if btdir.configured:
                self._watch_ancestor(btdir)
            return
        except (OSError, ValueError) as exc:
            self._warn_once(path, f"Beamtime directory {path} cannot be used: {exc}")
            return
        self._set_ancestor(btdir, "")
        if not btdir.watched:
            btdir.watched = self._acquire(path, st.st_ino)
        else:
            self._rewatch(path, st.st_ino)
        dir_stamp = (st.st_mtime_ns, st.st_ino)
        settled = dir_stamp == btdir.dir_stamp and \
            btdir.listed_at - st.st_mtime_ns / 1e9 > _SETTLE_SECONDS
        if not force and settled:
            known = [p for p in (*self._tracked, *self._rejected) if os.path.dirname(p) == path]
            for file in known:
                self._resolve_beamtime_file(file)
            return
        btdir.listed_at = time.time()
        btdir.dir_stamp = dir_stamp
        found: dict[str, _Stamp] = {}
        try:
            with os.scandir(path) as entries:
                for entry in entries:
                    if is_beamtime_file_name(self.cfg, entry.name):
                        try:
                            if entry.is_file():
                                found[entry.path] = _file_stamp(entry.stat())
                        except OSError:
                            continue
        except (OSError, ValueError) as exc:
            self._warn_once(path, f"Beamtime directory {path} cannot be read: {exc}")
            return
        for file in [p for p in self._tracked if os.path.dirname(p) == path]:
            if file not in found:
                self._remove_beamtime(file)
        for file in [p for p in self._rejected if os.path.dirname(p) == path]:
            if file not in found:
                del self._rejected[file]
        for file in sorted(found):
            self._consider_beamtime_file(file, found[file], force=force)

    # ------------------------------------------------------- beamtime files

    def _resolve_beamtime_file(self, path: str, quiet_if_empty: bool = False) -> None:
        try:
            st = os.stat(path)
            if not stat.S_ISREG(st.st_mode):
                raise FileNotFoundError(path)
        except (OSError, ValueError):
            if path in self._tracked:
                self._remove_beamtime(path)
            self._rejected.pop(path, None)
            return
        if quiet_if_empty and st.st_size == 0 and path not in self._tracked:
            return  # just created; its content comes with IN_CLOSE_WRITE
        self._consider_beamtime_file(path, _file_stamp(st), force=False)

    def _consider_beamtime_file(self, path: str, stamp: _Stamp, force: bool) -> None:
        tracked = self._tracked.get(path)
        if tracked is not None and tracked.stamp == stamp:
            return
        rejected = self._rejected.get(path)
        if rejected is not None and rejected.stamp == stamp:
            if rejected.beamtime is None or not force or self._excluded(rejected.beamtime):
                return
            del self._rejected[path]
            self._add_beamtime(path, rejected.beamtime, stamp)
            return
        directory = os.path.dirname(path)
        if directory in self.cfg.scandir_blacklist:
            self._rejected[path] = _Rejected(stamp, None)
            return
        try:
            beamtime = load_beamtime(path)
        except BeamtimeError as exc:
            self._warn_once(f"bt:{path}:{stamp}", f"{path} cannot be watched: {exc}")
            if tracked is not None:
                tracked.stamp = stamp  # keep following the last good content
            else:
                self._rejected[path] = _Rejected(stamp, None)
            return
        if tracked is not None:
            if dict(tracked.beamtime.metadata) == dict(beamtime.metadata):
                tracked.stamp = stamp
                return
            logger.info("Beamtime file %s changed", path)
            self._remove_beamtime(path)
        self._rejected.pop(path, None)
        if self._excluded(beamtime):
            self._rejected[path] = _Rejected(stamp, beamtime)
            return
        self._add_beamtime(path, beamtime, stamp)

    def _excluded(self, beamtime: Beamtime) -> bool:
        if is_blacklisted(self.cfg, beamtime, self._blacklist):
            logger.debug("Beamtime %s is blacklisted", beamtime.path)
            return True
        core = CorePaths(self.cfg, beamtime)
        if in_scandir_blacklist(self.cfg, core, beamtime.directory):
            logger.debug("Beamtime directory %s is in scandir_blacklist", beamtime.directory)
            return True
        return False

    def _add_beamtime(self, path: str, beamtime: Beamtime, stamp: _Stamp) -> None:
        tracked = _Tracked(
            beamtime=beamtime,
            stamp=stamp,
            core=CorePaths(self.cfg, beamtime),
            list_name=list_file_name(self.cfg, beamtime),
        )
        self._tracked[path] = tracked
        logger.info("Beamtime %s: following %s", beamtime.beamtime_id, path)
        self._emit("beamtime_added", beamtime)
        depth = self.cfg.max_scandir_depth
        tracked.root = self._build(tracked, beamtime.directory, depth if depth >= 0 else -1, None)

    def _remove_beamtime(self, path: str) -> None:
        tracked = self._tracked.pop(path, None)
        if tracked is None:
            return
        if tracked.root is not None:
            self._drop(tracked.root)
            tracked.root = None
        logger.info("Beamtime %s: stopped following %s", tracked.beamtime.beamtime_id, path)
        self._emit("beamtime_removed", path)

    # ------------------------------------------------------------ scan tree

    def _build(
        self, tracked: _Tracked, path: str, budget: int, parent: Optional[_Node]
    ) -> Optional[_Node]:
        """Create the node for ``path`` and walk everything below it."""
        top = _Node(owner=tracked, path=path, budget=budget, parent=parent)
        if not self._attach(top):
            return None
        stack = [top]
        while stack and not self._cancelled:
            node = stack.pop()
            for child in reversed(self._sync_node(node, force=True, walk=False)):
                stack.append(child)
        return top

    def _attach(self, node: _Node) -> bool:
        ino = _inode(node.path)
        if ino is None or not self._acquire(node.path, ino):
            return False
        node.generation = self._generation
        self._nodes_at.setdefault(node.path, []).append(node)
        if node.parent is not None:
            node.parent.children[os.path.basename(node.path)] = node
        return True

    def _drop(self, top: _Node) -> None:
        """Forget ``top`` and its subtree, reporting the lists that go away."""
        if top.parent is not None and top.parent.children.get(os.path.basename(top.path)) is top:
            del top.parent.children[os.path.basename(top.path)]
        stack = [top]
        while stack:
            node = stack.pop()
            stack.extend(node.children.values())
            node.children = {}
            node.attached = False
            if node.ctx is not None:
                ctx, node.ctx = node.ctx, None
                logger.info("Dataset list %s is no longer followed", ctx.list_path)
                self._emit("list_removed", ctx)
            users = self._nodes_at.get(node.path)
            if users is not None:
                users[:] = [other for other in users if other is not node]
                if not users:
                    del self._nodes_at[node.path]
            self._release(node.path)

    def _sync_node(self, node: _Node, force: bool, walk: bool = True) -> list[_Node]:
        """Bring one directory in line with the disk; returns the new children.

        With ``walk`` the new children's subtrees are built too; without, the
        caller walks them (so deep trees need no recursion).
        """
        try:
            st = os.stat(node.path)
            if not stat.S_ISDIR(st.st_mode):
                raise NotADirectoryError(node.path)
        except (FileNotFoundError, NotADirectoryError):
            if node.parent is not None:
                self._drop(node)
            else:
                self._clear_root(node)
            return []
        except (OSError, ValueError) as exc:
            self._warn_once(node.path, f"Scan directory {node.path} cannot be used: {exc}")
            return []
        dir_stamp = (st.st_mtime_ns, st.st_ino)
        if node.dir_stamp is not None and node.dir_stamp[1] != st.st_ino:
            # another directory now has this path: start again below it
            for child in list(node.children.values()):
                self._drop(child)
            self._rewatch(node.path, st.st_ino)
            force = True
        elif self.mode == MODE_INOTIFY:
            watch = self._watches.get(node.path)
            if watch is not None and watch.wd is None:
                self._rewatch(node.path, st.st_ino)
        if not force and node.settled(dir_stamp):
            if node.ctx is not None:
                self._check_list(node)
            return []
        listed_at = time.time()
        listing = self._list_scan_dir(node)
        if listing is None:
            return []
        list_stamp, subdirs = listing
        node.dir_stamp, node.listed_at = dir_stamp, listed_at
        self._update_list(node, list_stamp)
        descend = node.budget != 0 and (self.cfg.watch_scandir_subdir or node.ctx is None)
        wanted = set()
        if descend:
            for name in subdirs:
                child_path = os.path.join(node.path, name)
                if in_scandir_blacklist(self.cfg, node.owner.core, child_path):
                    continue
                wanted.add(name)
        for name in [n for n in node.children if n not in wanted]:
            self._drop(node.children[name])
        budget = node.budget - 1 if node.budget > 0 else -1
        created = []
        for name in sorted(wanted - set(node.children)):
            child_path = os.path.join(node.path, name)
            if walk:
                child = self._build(node.owner, child_path, budget, node)
            else:
                child = _Node(owner=node.owner, path=child_path, budget=budget, parent=node)
                if not self._attach(child):
                    child = None
            if child is not None:
                created.append(child)
        return created

    def _clear_root(self, node: _Node) -> None:
        """The beamtime directory itself vanished: drop what is below it."""
        for child in list(node.children.values()):
            self._drop(child)
        self._update_list(node, None)
        node.dir_stamp = None

    def _list_scan_dir(self, node: _Node) -> Optional[tuple[Optional[_Stamp], list[str]]]:
        list_stamp = None
        subdirs = []
        try:
            with os.scandir(node.path) as entries:
                for entry in entries:
                    if self._cancelled:
                        return None
                    if entry.name == node.owner.list_name:
                        try:
                            if entry.is_file():
                                list_stamp = _file_stamp(entry.stat())
                        except OSError:
                            pass
                    elif _is_dir(entry, follow=False):
                        subdirs.append(entry.name)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except (OSError, ValueError) as exc:
            self._warn_once(node.path, f"Scan directory {node.path} cannot be read: {exc}")
            return None
        return list_stamp, subdirs

    def _update_list(self, node: _Node, list_stamp: Optional[_Stamp]) -> None:
        if list_stamp is not None and node.ctx is None:
            node.ctx = scandir_context(self.cfg, node.owner.beamtime, node.path)
            node.list_stamp = list_stamp
            logger.info("Dataset list found: %s", node.ctx.list_path)
            self._emit("list_found", node.ctx)
        elif list_stamp is None and node.ctx is not None:
            ctx, node.ctx, node.list_stamp = node.ctx, None, None
            logger.info("Dataset list removed: %s", ctx.list_path)
            self._emit("list_removed", ctx)
        elif list_stamp is not None and list_stamp != node.list_stamp:
            node.list_stamp = list_stamp
            assert node.ctx is not None
            self._emit("list_changed", node.ctx)

    def _check_list(self, node: _Node) -> None:
        try:
            st = os.stat(node.list_file)
            if not stat.S_ISREG(st.st_mode):
                raise FileNotFoundError(node.list_file)
        except (FileNotFoundError, NotADirectoryError):
            self._sync_node(node, force=True)
            return
        except (OSError, ValueError) as exc:
            self._warn_once(node.list_file, f"Dataset list {node.list_file}: {exc}")
            return
        self._update_list(node, _file_stamp(st))

    def _all_nodes(self) -> Iterable[_Node]:
        for users in list(self._nodes_at.values()):
            yield from list(users)


def _inode(path: str) -> Optional[int]:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_ino if stat.S_ISDIR(st.st_mode) else None


def _is_dir(entry: os.DirEntry, follow: bool) -> bool:
    try:
        return entry.is_dir(follow_symlinks=follow)
    except OSError:
        return False
