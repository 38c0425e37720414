"""Intent records: which scans this ingestor may already have sent.

Before the first request that could create something in SciCat for a scan
line that was never recorded, the line is appended (fsync'ed) to
``<ingested list>.intent``. A line that is neither in the ingested list nor
in this journal has certainly never been sent, so it goes out with three
requests (dataset, datablock, thumbnail) and no existence checks; every other
line (a crash, a lost answer, a retry, a re-ingestion) is checked against the
server first. See README "SciCat access".
"""

from __future__ import annotations

import logging
import os
from typing import Callable, Optional

from .state import atomic_write

logger = logging.getLogger(__name__)

#: The journal is rewritten without obsolete lines when it holds more than this many.
COMPACT_AFTER = 512


def journal_path(ingested_path: str) -> str:
    """The intent journal beside an ingested list."""
    return ingested_path + ".intent"


class IntentJournal:
    """The intent records of one ingested list (kept in memory, appended durably).

    Callers hold the ingested list's lock (``IngestedList.locked``) while they
    use it, as for the ingested list itself.
    """

    def __init__(self, ingested_path: str) -> None:
        self.path = journal_path(ingested_path)
        self._keys: set[str] = set()
        self._lines = 0
        self._stamp: Optional[tuple[int, int]] = None

    def refresh(self) -> None:
        """Read the journal again if the file changed (or appeared) on disk."""
        stamp = _stamp(self.path)
        if stamp == self._stamp:
            return
        keys: set[str] = set()
        lines = 0
        if stamp is not None:
            with open(self.path, encoding="utf-8", errors="replace") as handle:
                for raw in handle:
                    if raw.endswith("\n") and raw.strip():  # a torn last line never counts
                        keys.add(raw[:-1])
                        lines += 1
        self._keys, self._lines, self._stamp = keys, lines, stamp

    def __contains__(self, key: str) -> bool:
        return key in self._keys

    def add(self, key: str) -> None:
        """Record durably that ``key`` is about to be sent (no-op if recorded already)."""
        if key in self._keys:
            return
        if "\n" in key:
            raise ValueError(f"an intent record cannot hold a line break: {key!r}")
        directory = os.path.dirname(self.path) or "."
        os.makedirs(directory, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if self._needs_newline(fd):
                os.write(fd, b"\n")
            os.write(fd, (key + "\n").encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        self._keys.add(key)
        self._lines += 1
        self._stamp = _stamp(self.path)

    def _needs_newline(self, fd: int) -> bool:
        size = os.fstat(fd).st_size
        if not size:
            return False
        with open(self.path, "rb") as handle:
            handle.seek(size - 1)
            return handle.read(1) != b"\n"

    def compact(self, obsolete: Callable[[str], bool]) -> None:
        """Rewrite the journal without keys for which ``obsolete(key)`` holds, when large."""
        if self._lines <= COMPACT_AFTER:
            return
        keep = sorted(key for key in self._keys if not obsolete(key))
        atomic_write(self.path, "".join(key + "\n" for key in keep))
        self._keys, self._lines, self._stamp = set(keep), len(keep), _stamp(self.path)


def _stamp(path: str) -> Optional[tuple[int, int]]:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return (stat.st_ino, stat.st_size)
