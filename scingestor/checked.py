"""Datablocks known to match their data files, so a re-ingestion need not ask nxsfileinfo again.

On re-ingestion every single-object datablock file is compared with what the
stream generator (``datablock_metadata_stream_generator``) says about the data
files now (README "Re-ingestion"). That costs an ``nxsfileinfo`` run per scan
even when nothing changed. What a datablock describes depends only on the
datablock generator's command line and on the files it names, so a
*fingerprint* of both (every word; path, size, modification time, mode and
owner of every file below each absolute path word, or that it is missing)
identifies it. Whenever a datablock file is made or compared, the fingerprint
taken just before and the file's own size and mtime are appended to
``<ingested list>.checked`` (JSON lines, last one wins); the next re-ingestion
runs the stream generator only when either changed. The file is a cache:
deleting it costs time, never a change. Only in-process ``nxsfileinfo``
commands are fingerprinted (another program may read more than its arguments).
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


def fingerprint(argv: Sequence[str], exclude: Sequence[str] = ()) -> str:
    """What the output of the command ``argv`` depends on, as one hex digest.

    Words in ``exclude`` (the command's own output file) are hashed as words only.
    """
    digest = hashlib.sha256()
    for word in argv:
        digest.update(word.encode("utf-8", "surrogateescape") + b"\0")
    for word in argv:
        if os.path.isabs(word) and word not in exclude:
            _add_path(digest, word)
    return digest.hexdigest()[:32]


def file_stamp(path: str) -> Tuple[int, int]:
    """(size, mtime in ns) of a file; (-1, -1) when it cannot be read."""
    try:
        info = os.stat(path)
    except OSError:
        return -1, -1
    return info.st_size, info.st_mtime_ns


class CheckedDatablocks:
    """The ``<ingested list>.checked`` cache of one list (line → :data:`Check`).

    ``load=False`` (the daemon) only appends; the re-ingestion tool loads it,
    appends too, and rewrites it without superseded lines at the end of a pass
    (:meth:`compact`). Callers hold the ingested list's lock.
    """

    def __init__(self, ingested_path: str, *, load: bool = True) -> None:
        self.path = checked_path(ingested_path)
        self._checks: Dict[str, Check] = {}
        self._lines = 0
        self._lock = threading.Lock()  # added to by the sending threads
        if load:
            self._load()

    def _load(self) -> None:
        try:
            with open(self.path, encoding="utf-8", errors="replace") as handle:
                for raw in handle:
                    self._lines += 1
                    parsed = _parse(raw)
                    if parsed is not None:
                        self._checks[parsed[0]] = parsed[1]
        except FileNotFoundError:
            return
        except OSError as exc:
            logger.warning("%s: ignored (%s); datablocks are compared again", self.path, exc)

    def get(self, line: str) -> Optional[Check]:
        with self._lock:
            return self._checks.get(line)

    def add(self, line: str, check: Check) -> None:
        """Append ``check`` for ``line`` (a failure to write only costs time later)."""
        with self._lock:
            if self._checks.get(line) == check:
                return
            self._checks[line] = check
            text = "\n" + json.dumps([line, *check]) + "\n"  # after a torn line too
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    os.write(fd, text.encode("utf-8"))
                finally:
                    os.close(fd)
                self._lines += 2
            except OSError as exc:
                logger.warning("%s: cannot be written: %s", self.path, exc)

    def compact(self) -> None:
        """Rewrite the file with one line per list line, when it holds more."""
        with self._lock:
            if self._lines <= len(self._checks):
                return
            text = "".join(json.dumps([line, *check]) + "\n"
                           for line, check in sorted(self._checks.items()))
            self._lines = len(self._checks)
        try:
            atomic_write(self.path, text)
        except OSError as exc:
            logger.warning("%s: cannot be written: %s", self.path, exc)


def _parse(raw: str) -> Optional[Tuple[str, Check]]:
    """One cache line, or None (an empty or torn line)."""
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    if (isinstance(value, list) and len(value) == 4 and isinstance(value[0], str)
            and isinstance(value[1], str)
            and all(isinstance(number, int) for number in value[2:])):
        return value[0], (value[1], value[2], value[3])
    return None
