"""The scan directories below each followed beamtime, and their dataset lists.

One tree of nodes per beamtime, chosen by :class:`scingestor.tree.ScanPolicy`
(depth, ``scandir_blacklist``, ``watch_scandir_subdir``): the same rules as the
one walk of ``scicat_dataset_ingest``. A node is brought in line with the disk
by listing its directory; new sub-directories are walked, vanished ones are
dropped with their lists (reported to the sink), existing subtrees are not
walked again.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional

from ..beamtime import Beamtime, ScanDirContext, scandir_context
from ..config import IngestorConfig
from ..tree import ScanDirListing, ScanPolicy, read_scan_dir
from .counts import next_version
from .inotify import Event
from .sink import DiscoverySink
from .stamps import Stamp, WarnOnce, dir_stamp, file_stamp, inode, settled
from .watchset import WatchSet

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class _Root:
    """The scan tree of one followed beamtime."""

    beamtime: Beamtime
    policy: ScanPolicy
    top: Optional[_Node] = None


@dataclass(eq=False)
class _Node:
    """One scan directory of one beamtime."""

    root: _Root
    path: str
    budget: int
    parent: Optional[_Node]
    children: dict[str, _Node] = field(default_factory=dict)
    ctx: Optional[ScanDirContext] = None
    list_stamp: Optional[Stamp] = None
    dir_stamp: Optional[Stamp] = None
    listed_at: float = 0.0
    generation: int = 0
    attached: bool = True

    @property
    def list_file(self) -> str:
        return os.path.join(self.path, self.root.policy.list_name)


@dataclass
class ScanDirty:
    """Scan directories to list again (``nodes``) and lists to ``stat`` again (``lists``)."""

    nodes: set[str] = field(default_factory=set)
    lists: set[str] = field(default_factory=set)


class ScanTrees:
    """Every followed beamtime's scan tree; list changes are reported to ``sink``."""

    def __init__(
        self,
        cfg: IngestorConfig,
        watches: WatchSet,
        sink: DiscoverySink,
        stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self._cfg = cfg
        self._watches = watches
        self._sink = sink
        self._stop = stop
        self._roots: dict[str, _Root] = {}  # beamtime file -> tree
        self._nodes_at: dict[str, list[_Node]] = {}
        self._generation = 0
        #: changes whenever a scan directory comes or goes (:func:`.counts.next_version`)
        self.version = 0
        self._warn = WarnOnce(logger)

    # ----------------------------------------------------------------- public

    def add(self, beamtime: Beamtime) -> None:
        """Follow the scan tree of ``beamtime`` (walked now; lists found are reported)."""
        self.remove(beamtime.path)
        root = self._roots[beamtime.path] = _Root(
            beamtime, ScanPolicy.for_beamtime(self._cfg, beamtime)
        )
        root.top = self._build(root, beamtime.directory, root.policy.root_budget, None)

    def remove(self, beamtime_path: str) -> None:
        """Stop following the scan tree of the beamtime file at ``beamtime_path``."""
        root = self._roots.pop(beamtime_path, None)
        if root is not None and root.top is not None:
            self._drop(root.top)
            root.top = None

    def begin_pass(self) -> None:
        """Start a reconciliation pass: trees built from now on are not walked twice by it."""
        self._generation += 1

    def reconcile(self, force: bool) -> None:
        """Bring every node not yet seen in this pass in line with the disk."""
        for root in list(self._roots.values()):
            stack = [root.top] if root.top is not None else []
            while stack and not self._stop():
                node = stack.pop()
                if not node.attached or node.generation == self._generation:
                    continue
                self._sync(node, force)
                if node.attached:
                    stack.extend(
                        child for _, child in sorted(node.children.items(), reverse=True)
                        if child.generation != self._generation
                    )

    def check_lists(self) -> None:
        """``stat`` every known list file; report those whose stamp changed."""
        for node in self._all_nodes():
            if self._stop():
                return
            if node.attached and node.ctx is not None:
                self._check_list(node)

    def mark_directory(self, path: str, dirty: ScanDirty) -> None:
        """The watch on ``path`` itself went away or was moved."""
        if path in self._nodes_at:
            dirty.nodes.add(path)

    def mark_entry(self, directory: str, event: Event, dirty: ScanDirty) -> None:
        """Something happened to the entry ``event.name`` of the watched ``directory``."""
        structural = event.created or event.deleted
        for node in self._nodes_at.get(directory, ()):
            if event.is_dir:
                if structural:
                    dirty.nodes.add(directory)
            elif event.name == node.root.policy.list_name:
                if structural:
                    dirty.nodes.add(directory)
                else:
                    dirty.lists.add(directory)

    def apply(self, dirty: ScanDirty) -> None:
        """Look again at what ``dirty`` names."""
        for path in sorted(dirty.nodes):
            for node in list(self._nodes_at.get(path, ())):
                if node.attached:
                    self._sync(node, force=True)
        for path in sorted(dirty.lists - dirty.nodes):
            for node in list(self._nodes_at.get(path, ())):
                if node.attached and node.ctx is not None:
                    self._check_list(node)

    def scan_dirs(self) -> list[str]:
        """Every scan directory, sorted."""
        return sorted(self._nodes_at)

    def scan_dir_count(self) -> int:
        """How many scan directories are watched (O(1))."""
        return len(self._nodes_at)

    def is_scan_dir(self, path: str) -> bool:
        """True when ``path`` is a watched scan directory (O(1))."""
        return path in self._nodes_at

    def list_files(self) -> list[str]:
        """Every followed dataset list (in the form given to the sink), sorted."""
        return sorted(node.ctx.list_path for node in self._all_nodes() if node.ctx is not None)

    def close(self) -> None:
        """Forget every tree without reporting (the :class:`WatchSet` is closed by its owner)."""
        self._roots.clear()
        if self._nodes_at:
            self._nodes_at.clear()
            self.version = next_version()

    # --------------------------------------------------------------- building

    def _build(
        self, root: _Root, path: str, budget: int, parent: Optional[_Node]
    ) -> Optional[_Node]:
        """Create the node for ``path`` and walk everything below it."""
        top = _Node(root=root, path=path, budget=budget, parent=parent)
        if not self._attach(top):
            return None
        stack = [top]
        while stack and not self._stop():
            node = stack.pop()
            for child in reversed(self._sync(node, force=True, walk=False)):
                stack.append(child)
        return top

    def _attach(self, node: _Node) -> bool:
        ino = inode(node.path)
        if ino is None or not self._watches.acquire(node.path, ino):
            return False
        node.generation = self._generation
        users = self._nodes_at.get(node.path)
        if users is None:
            users = self._nodes_at[node.path] = []
            self.version = next_version()
        users.append(node)
        if node.parent is not None:
            node.parent.children[os.path.basename(node.path)] = node
        return True

    def _drop(self, top: _Node) -> None:
        """Forget ``top`` and its subtree, reporting the lists that go away."""
        name = os.path.basename(top.path)
        if top.parent is not None and top.parent.children.get(name) is top:
            del top.parent.children[name]
        stack = [top]
        while stack:
            node = stack.pop()
            stack.extend(node.children.values())
            node.children = {}
            node.attached = False
            if node.ctx is not None:
                ctx, node.ctx = node.ctx, None
                logger.info("Dataset list %s is no longer followed", ctx.list_path)
                self._sink.list_removed(ctx)
            users = self._nodes_at.get(node.path)
            if users is not None:
                users[:] = [other for other in users if other is not node]
                if not users:
                    del self._nodes_at[node.path]
                    self.version = next_version()
            self._watches.release(node.path)

    # ------------------------------------------------------------- syncing

    def _sync(self, node: _Node, force: bool, walk: bool = True) -> list[_Node]:
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
                self._clear_top(node)
            return []
        except (OSError, ValueError) as exc:
            self._warn(node.path, f"Scan directory {node.path} cannot be used: {exc}")
            return []
        stamp = dir_stamp(st)
        if node.dir_stamp is not None and node.dir_stamp[1] != st.st_ino:
            # another directory now has this path: start again below it
            for child in list(node.children.values()):
                self._drop(child)
            self._watches.rewatch(node.path, st.st_ino)
            force = True
        elif self._watches.lost(node.path):
            self._watches.rewatch(node.path, st.st_ino)
        if not force and settled(stamp, node.dir_stamp, node.listed_at):
            if node.ctx is not None:
                self._check_list(node)
            return []
        listed_at = time.time()
        listing = self._read(node)
        if listing is None:
            return []
        node.dir_stamp, node.listed_at = stamp, listed_at
        self._update_list(node, file_stamp(listing.list_stat) if listing.list_stat else None)
        policy = node.root.policy
        wanted = set(policy.children(node.path, node.budget, listing))
        for name in [n for n in node.children if n not in wanted]:
            self._drop(node.children[name])
        budget = policy.child_budget(node.budget)
        created = []
        for name in sorted(wanted - set(node.children)):
            child_path = os.path.join(node.path, name)
            child: Optional[_Node]
            if walk:
                child = self._build(node.root, child_path, budget, node)
            else:
                child = _Node(root=node.root, path=child_path, budget=budget, parent=node)
                if not self._attach(child):
                    child = None
            if child is not None:
                created.append(child)
        return created

    def _read(self, node: _Node) -> Optional[ScanDirListing]:
        try:
            return read_scan_dir(node.path, node.root.policy.list_name, self._stop)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except (OSError, ValueError) as exc:
            self._warn(node.path, f"Scan directory {node.path} cannot be read: {exc}")
            return None

    def _clear_top(self, node: _Node) -> None:
        """The beamtime directory itself vanished: drop what is below it."""
        for child in list(node.children.values()):
            self._drop(child)
        self._update_list(node, None)
        node.dir_stamp = None

    def _update_list(self, node: _Node, list_stamp: Optional[Stamp]) -> None:
        if list_stamp is not None and node.ctx is None:
            node.ctx = scandir_context(self._cfg, node.root.beamtime, node.path)
            node.list_stamp = list_stamp
            logger.info("Dataset list found: %s", node.ctx.list_path)
            self._sink.list_found(node.ctx)
        elif list_stamp is None and node.ctx is not None:
            ctx, node.ctx, node.list_stamp = node.ctx, None, None
            logger.info("Dataset list removed: %s", ctx.list_path)
            self._sink.list_removed(ctx)
        elif list_stamp is not None and list_stamp != node.list_stamp:
            node.list_stamp = list_stamp
            assert node.ctx is not None
            self._sink.list_changed(node.ctx)

    def _check_list(self, node: _Node) -> None:
        try:
            st = os.stat(node.list_file)
            if not stat.S_ISREG(st.st_mode):
                raise FileNotFoundError(node.list_file)
        except (FileNotFoundError, NotADirectoryError):
            self._sync(node, force=True)
            return
        except (OSError, ValueError) as exc:
            self._warn(node.list_file, f"Dataset list {node.list_file}: {exc}")
            return
        self._update_list(node, file_stamp(st))

    def _all_nodes(self) -> Iterable[_Node]:
        for users in list(self._nodes_at.values()):
            yield from list(users)
