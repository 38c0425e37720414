"""Datablocks known to match their data files, so a re-ingestion need not ask nxsfileinfo again.

On re-ingestion every single-object datablock file is compared with what the
stream generator (``datablock_metadata_stream_generator``) says about the data
files now (README "Re-ingestion"). That costs an ``nxsfileinfo`` run per scan
even when nothing changed. The generator's answer depends only on its command
line and on the files it names, so a *fingerprint* of both (every word; name,
size, modification time, mode and owner of every file below each absolute path
word, or that it is missing) identifies it. After a comparison the fingerprint
and the datablock file's own stamp are kept in ``<ingested list>.checked``
(JSON, written atomically at the end of a pass); the next pass runs the
generator only when either changed. The file is a cache: deleting it costs
time, never a change. Only in-process ``nxsfileinfo`` commands are
fingerprinted; another program may read more than its arguments.
See docs/architecture.md "Re-ingestion without work".
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import threading
from typing import Any, Dict, Optional, Sequence, Tuple

from .state import atomic_write

logger = logging.getLogger(__name__)

#: (fingerprint of the command and its files, datablock file size, mtime in ns)
Check = Tuple[str, int, int]


def checked_path(ingested_path: str) -> str:
    """The cache file beside an ingested list."""
    return ingested_path + ".checked"


def _add_stat(digest: Any, label: str, info: os.stat_result) -> None:
    digest.update(
        f"{label}\0{info.st_size}\0{info.st_mtime_ns}\0{info.st_mode}\0"
        f"{info.st_uid}\0{info.st_gid}\n".encode("utf-8", "surrogateescape"))


def _add_path(digest: Any, path: str) -> None:
    try:
        info = os.stat(path)
    except OSError:
        digest.update(b"missing\0" + path.encode("utf-8", "surrogateescape") + b"\n")
        return
    _add_stat(digest, path, info)
    if not stat.S_ISDIR(info.st_mode):
        return
    for directory, subdirs, names in os.walk(path):
        subdirs.sort()
        for name in sorted(names + subdirs):
            full = os.path.join(directory, name)
            try:
                _add_stat(digest, os.path.relpath(full, path), os.stat(full))
            except OSError:
                digest.update(b"vanished\0" + full.encode("utf-8", "surrogateescape") + b"\n")


def fingerprint(argv: Sequence[str]) -> str:
    """What the output of the command ``argv`` depends on, as one hex digest."""
    digest = hashlib.sha256()
    for word in argv:
        digest.update(word.encode("utf-8", "surrogateescape") + b"\0")
    for word in argv:
        if os.path.isabs(word):
            _add_path(digest, word)
    return digest.hexdigest()


def file_stamp(path: str) -> Tuple[int, int]:
    """(size, mtime in ns) of a file; (-1, -1) when it cannot be read."""
    try:
        info = os.stat(path)
    except OSError:
        return -1, -1
    return info.st_size, info.st_mtime_ns


class CheckedDatablocks:
    """The ``<ingested list>.checked`` cache of one list (line → :data:`Check`)."""

    def __init__(self, ingested_path: str) -> None:
        self.path = checked_path(ingested_path)
        self._checks: Dict[str, Check] = {}
        self._changed = False
        self._lock = threading.Lock()  # set by the sending threads
        self._load()

    def _load(self) -> None:
        try:
            with open(self.path, encoding="utf-8") as handle:
                content = json.load(handle)
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            logger.warning("%s: ignored (%s); datablocks are compared again", self.path, exc)
            return
        if not isinstance(content, dict):
            return
        for line, value in content.items():
            if (isinstance(value, list) and len(value) == 3 and isinstance(value[0], str)
                    and all(isinstance(number, int) for number in value[1:])):
                self._checks[str(line)] = (value[0], value[1], value[2])

    def get(self, line: str) -> Optional[Check]:
        with self._lock:
            return self._checks.get(line)

    def set(self, line: str, check: Optional[Check]) -> None:
        """Keep ``check`` for ``line`` (None forgets it)."""
        with self._lock:
            if check is None:
                self._changed |= self._checks.pop(line, None) is not None
            elif self._checks.get(line) != check:
                self._checks[line] = check
                self._changed = True

    def save(self) -> None:
        """Write the cache atomically when it changed (a failure only costs time later)."""
        with self._lock:
            if not self._changed:
                return
            text = json.dumps({line: list(check) for line, check
                               in sorted(self._checks.items())})
            self._changed = False
        try:
            atomic_write(self.path, text)
        except OSError as exc:
            logger.warning("%s: cannot be written: %s", self.path, exc)
