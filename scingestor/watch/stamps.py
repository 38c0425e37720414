"""Change stamps of files and directories, and warnings given once, for the watch modules."""

from __future__ import annotations

import logging
import os
import stat
from typing import Optional, Tuple

logger = logging.getLogger(__name__)

#: A directory whose mtime is younger than this (relative to when it was
#: listed) is listed again at the next cheap poll: coarse timestamps could hide
#: a second change within the same tick.
SETTLE_SECONDS = 2.0

#: ``(mtime_ns, size, inode)`` of a file, ``(mtime_ns, inode)`` of a directory.
Stamp = Tuple[int, ...]


def file_stamp(st: os.stat_result) -> Stamp:
    """Stamp of a file: changes when it is written or replaced."""
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def dir_stamp(st: os.stat_result) -> Stamp:
    """Stamp of a directory: changes when an entry is added, removed or renamed."""
    return (st.st_mtime_ns, st.st_ino)


def settled(stamp: Stamp, known: Optional[Stamp], listed_at: float) -> bool:
    """True when a listing made at ``listed_at`` (wall clock) reflects directory ``stamp``."""
    return stamp == known and listed_at - stamp[0] / 1e9 > SETTLE_SECONDS


def inode(path: str) -> Optional[int]:
    """Inode of the directory at ``path``; ``None`` when there is no directory."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_ino if stat.S_ISDIR(st.st_mode) else None


class WarnOnce:
    """Log each (key, text) warning only the first time it happens."""

    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self._seen: set[tuple[str, str]] = set()

    def __call__(self, key: str, text: str) -> None:
        item = (key, text)
        if item not in self._seen:
            self._seen.add(item)
            self._log.warning("%s", text)
