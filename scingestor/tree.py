"""The tree policy: which directories hold beamtimes, scan directories and dataset lists.

One set of rules for the daemon (``watch/`` applies it incrementally as the
disk changes) and for ``scicat_dataset_ingest`` (one walk, :func:`find_list_dirs`),
so both see the same lists (README, "Running the daemon" and "Re-ingestion at
the end of a beamtime"):

* beamtime directories: every ``beamtime_dirs`` entry (made absolute) and every
  immediate sub-directory of ``beamtime_base_dir`` (links followed);
* beamtime files: regular files directly in a beamtime directory whose name has
  ``beamtime_filename_prefix`` and ``beamtime_filename_postfix``; skipped when
  the directory is in ``scandir_blacklist`` or the beamtime is blacklisted by
  proposal type or id;
* scan directories: the beamtime directory and, at most ``max_scandir_depth``
  levels down, its sub-directories (symbolic links not followed); descent stops
  at a blacklisted directory (nothing below it is visited) and, unless
  ``watch_scandir_subdir``, at a directory that holds the dataset list.

Decisions are pure functions of paths and configuration; the two listing
helpers only read one directory.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

from .beamtime import (
    Beamtime,
    BlacklistReader,
    CorePaths,
    in_scandir_blacklist,
    is_beamtime_file_name,
    is_blacklisted,
    list_file_name,
)
from .config import IngestorConfig

logger = logging.getLogger(__name__)

#: ``max_scandir_depth`` (and a node budget) meaning "no depth limit".
UNLIMITED = -1

ProblemHandler = Callable[[str], None]


# ----------------------------------------------------------- beamtime directories


def beamtime_dir_path(raw: str) -> str:
    """Absolute form of one ``beamtime_dirs`` entry; ``ValueError`` when it cannot be a path."""
    if not isinstance(raw, str) or "\0" in raw:
        raise ValueError(f"Beamtime directory {raw!r} cannot be used: not a valid path")
    return os.path.abspath(raw)


def base_dir(cfg: IngestorConfig) -> str:
    """Absolute ``beamtime_base_dir``, ``""`` when not configured."""
    return os.path.abspath(cfg.beamtime_base_dir) if cfg.beamtime_base_dir else ""


def base_beamtime_dirs(base: str) -> list[str]:
    """The beamtime directories below ``base`` (its sub-directories), sorted.

    Raises ``OSError`` (or ``ValueError``) when ``base`` cannot be listed.
    """
    with os.scandir(base) as entries:
        names = [entry.name for entry in entries if _is_dir(entry, follow=True)]
    return [os.path.join(base, name) for name in sorted(names)]


def beamtime_dirs(cfg: IngestorConfig, on_problem: ProblemHandler) -> list[str]:
    """Every beamtime directory, configured ones first, without duplicates.

    An unusable ``beamtime_dirs`` entry or an unreadable ``beamtime_base_dir``
    is passed to ``on_problem`` and left out.
    """
    result: list[str] = []
    for raw in cfg.beamtime_dirs:
        try:
            path = beamtime_dir_path(raw)
        except ValueError as exc:
            on_problem(str(exc))
            continue
        if path not in result:
            result.append(path)
    base = base_dir(cfg)
    if base:
        try:
            found = base_beamtime_dirs(base)
        except (OSError, ValueError) as exc:
            on_problem(f"{base}: {getattr(exc, 'strerror', None) or exc}")
            found = []
        result.extend(path for path in found if path not in result)
    return result


# ----------------------------------------------------------------- beamtime files


def beamtime_files(cfg: IngestorConfig, directory: str) -> dict[str, os.stat_result]:
    """The beamtime files directly in ``directory`` with their ``stat`` (links followed).

    Raises ``OSError`` (or ``ValueError``) when ``directory`` cannot be listed.
    """
    found: dict[str, os.stat_result] = {}
    with os.scandir(directory) as entries:
        for entry in entries:
            if not is_beamtime_file_name(cfg, entry.name):
                continue
            try:
                if entry.is_file():
                    found[entry.path] = entry.stat()
            except OSError:
                continue
    return found


def beamtime_dir_blacklisted(cfg: IngestorConfig, directory: str) -> bool:
    """True when ``directory`` itself is in ``scandir_blacklist`` (checked before parsing)."""
    return directory in cfg.scandir_blacklist


def beamtime_excluded(
    cfg: IngestorConfig, beamtime: Beamtime, blacklist: BlacklistReader
) -> bool:
    """True when ``beamtime`` is not followed: type or id blacklist, blacklisted directory."""
    if is_blacklisted(cfg, beamtime, blacklist):
        logger.debug("Beamtime %s is blacklisted", beamtime.path)
        return True
    if in_scandir_blacklist(cfg, CorePaths(cfg, beamtime), beamtime.directory):
        logger.debug("Beamtime directory %s is in scandir_blacklist", beamtime.directory)
        return True
    return False


# ------------------------------------------------------------------ scan directories


@dataclass(frozen=True)
class ScanDirListing:
    """What one scan directory holds, as far as the tree policy cares."""

    list_stat: Optional[os.stat_result]  # the dataset list (a regular file), if present
    subdirs: tuple[str, ...]  # names of sub-directories (links not followed)

    @property
    def has_list(self) -> bool:
        return self.list_stat is not None


@dataclass(frozen=True, eq=False)
class ScanPolicy:
    """How the scan directories of one beamtime are chosen."""

    cfg: IngestorConfig
    core: CorePaths
    list_name: str

    @classmethod
    def for_beamtime(cls, cfg: IngestorConfig, beamtime: Beamtime) -> ScanPolicy:
        return cls(cfg=cfg, core=CorePaths(cfg, beamtime), list_name=list_file_name(cfg, beamtime))

    @property
    def root_budget(self) -> int:
        """Levels that may be walked below the beamtime directory (``UNLIMITED`` or >= 0)."""
        depth = self.cfg.max_scandir_depth
        return depth if depth >= 0 else UNLIMITED

    def descends(self, budget: int, has_list: bool) -> bool:
        """True when the sub-directories of a directory with ``budget`` are scan dirs too."""
        return budget != 0 and (self.cfg.watch_scandir_subdir or not has_list)

    @staticmethod
    def child_budget(budget: int) -> int:
        """Budget of the sub-directories of a directory with ``budget``."""
        return budget - 1 if budget > 0 else UNLIMITED

    def blacklisted(self, directory: str) -> bool:
        """True when ``directory`` (either path form) is in ``scandir_blacklist``."""
        return in_scandir_blacklist(self.cfg, self.core, directory)

    def children(
        self, directory: str, budget: int, listing: ScanDirListing
    ) -> list[str]:
        """Names of the sub-directories of ``directory`` that are scan dirs, sorted."""
        if not self.descends(budget, listing.has_list):
            return []
        return sorted(
            name for name in listing.subdirs
            if not self.blacklisted(os.path.join(directory, name))
        )


def read_scan_dir(
    path: str, list_name: str, stop: Optional[Callable[[], bool]] = None
) -> Optional[ScanDirListing]:
    """List one scan directory; ``None`` when ``stop()`` became true meanwhile.

    Raises ``OSError`` (or ``ValueError``) when ``path`` cannot be listed.
    """
    list_stat = None
    subdirs = []
    with os.scandir(path) as entries:
        for entry in entries:
            if stop is not None and stop():
                return None
            if entry.name == list_name:
                try:
                    st = entry.stat()
                    if stat.S_ISREG(st.st_mode):
                        list_stat = st
                except OSError:
                    pass
            elif _is_dir(entry, follow=False):
                subdirs.append(entry.name)
    return ScanDirListing(list_stat, tuple(subdirs))


def walk_scan_dirs(
    policy: ScanPolicy, root: str, on_problem: Optional[ProblemHandler] = None
) -> Iterator[tuple[str, ScanDirListing]]:
    """Every scan directory below (and including) ``root``, sorted depth first."""
    stack: list[tuple[str, int]] = [(root, policy.root_budget)]
    while stack:
        path, budget = stack.pop()
        try:
            listing = read_scan_dir(path, policy.list_name)
        except (OSError, ValueError) as exc:
            if on_problem is not None:
                on_problem(f"Scan directory {path} cannot be read: "
                           f"{getattr(exc, 'strerror', None) or exc}")
            continue
        assert listing is not None
        yield path, listing
        child_budget = policy.child_budget(budget)
        for name in reversed(policy.children(path, budget, listing)):
            stack.append((os.path.join(path, name), child_budget))


def find_list_dirs(
    policy: ScanPolicy, root: str, on_problem: Optional[ProblemHandler] = None
) -> list[str]:
    """The scan directories below ``root`` that hold the dataset list, in walk order."""
    return [path for path, listing in walk_scan_dirs(policy, root, on_problem) if listing.has_list]


def _is_dir(entry: os.DirEntry, follow: bool) -> bool:
    try:
        return entry.is_dir(follow_symlinks=follow)
    except OSError:
        return False

