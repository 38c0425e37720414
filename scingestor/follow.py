"""Following a file that grows by appends: read only what was added since the last read.

Used for the dataset lists (:mod:`scingestor.liststate`) and the ingested list
(:mod:`scingestor.state`); the rules are described in docs/architecture.md
"Reading only what was appended".

A :class:`FileFollower` remembers how far it has read (``offset``, always just
after a ``\\n``), the file's identity (device, inode), its size and modification
time when it was last read, and the last :data:`WINDOW` bytes before ``offset``.
The next :meth:`FileFollower.read` returns the complete lines added since, and
the text after the last ``\\n`` (the *tail*, which is not consumed and is read
again next time). It starts over from the beginning of the file (``restart``)
when the file is not the continuation of what was read:

* another file is at the path now (inode or device changed: replaced by rename);
* the file is shorter than ``offset`` (truncated);
* the :data:`WINDOW` bytes before ``offset`` differ (rewritten);
* the size is the one last seen but the modification time is not (rewritten in place).

An unchanged file (same identity, size and modification time) costs one
``fstat`` and no read at all. ``bytes_read`` counts every byte read, so tests
can check that a pass reads O(new bytes), not O(file).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Optional

logger = logging.getLogger(__name__)

#: Bytes before the read offset compared on every read that finds the file changed.
WINDOW = 512
_BLOCK = 1 << 20


@dataclass(frozen=True)
class Chunk:
    """What :meth:`FileFollower.read` found.

    ``restart``: ``lines`` start at the beginning of the file, forget what was read
    before. ``lines``: complete lines (each ending in ``\\n``), consumed.
    ``tail``: the bytes after the last ``\\n`` (not consumed).
    """

    restart: bool
    lines: bytes
    tail: bytes


class FileFollower:
    """Reads one file incrementally (see the module documentation)."""

    def __init__(self, path: str, window: int = WINDOW) -> None:
        self.path = path
        self._window_size = window
        self.bytes_read = 0
        self.restarts = 0
        self._ident: Optional[tuple[int, int]] = None
        self.offset = 0
        self._window = b""
        self._seen: Optional[tuple[int, int]] = None
        self._tail = b""

    def forget(self) -> None:
        """Read the whole file again next time."""
        self._ident = None
        self.offset = 0
        self._window = b""
        self._seen = None
        self._tail = b""

    @property
    def tail(self) -> bytes:
        """The unterminated text after the last line read (``b""`` when none)."""
        return self._tail

    def read(self) -> Optional[Chunk]:
        """The lines added since the last read; ``None`` when the file does not exist."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            self.forget()
            return None
        try:
            stat = os.fstat(fd)
            ident = (stat.st_dev, stat.st_ino)
            if ident == self._ident and self._seen == (stat.st_size, stat.st_mtime_ns):
                return Chunk(False, b"", self._tail)
            restart = not self._continues(fd, stat, ident)
            if restart:
                if self._ident is not None:
                    logger.debug("%s was replaced, truncated or rewritten: reading it again",
                                 self.path)
                self.forget()
                self.restarts += 1
                self._ident = ident
            data = self._read_from(fd, self.offset)
            end = self.offset + len(data)
            cut = data.rfind(b"\n") + 1
            lines, self._tail = data[:cut], data[cut:]
            self._advance(lines)
            after = os.fstat(fd)
            self._seen = (after.st_size, after.st_mtime_ns) if after.st_size == end else None
            return Chunk(restart, lines, self._tail)
        finally:
            os.close(fd)

    def _continues(self, fd: int, stat: os.stat_result, ident: tuple[int, int]) -> bool:
        if self._ident is None or ident != self._ident or stat.st_size < self.offset:
            return False
        if self._seen is not None and stat.st_size == self._seen[0]:
            return False  # same size, another modification time: rewritten in place
        if self._window:
            start = self.offset - len(self._window)
            before = os.pread(fd, len(self._window), start)
            self.bytes_read += len(before)
            if before != self._window:
                return False
        return True

    def _read_from(self, fd: int, offset: int) -> bytes:
        parts = []
        while True:
            block = os.pread(fd, _BLOCK, offset)
            if not block:
                break
            parts.append(block)
            offset += len(block)
        data = b"".join(parts)
        self.bytes_read += len(data)
        return data

    def _advance(self, lines: bytes) -> None:
        if lines:
            self.offset += len(lines)
            self._window = (self._window + lines[-self._window_size:])[-self._window_size:]

    # -- our own writes (the ingested list) ---------------------------------------------
    def appended(self, data: bytes, stat: os.stat_result) -> None:
        """We made the file what was read plus ``data`` (complete lines; tail cut off)."""
        self._ident = (stat.st_dev, stat.st_ino)
        self._tail = b""
        self._advance(data)
        self._seen = ((stat.st_size, stat.st_mtime_ns) if stat.st_size == self.offset
                      else None)

    def replaced(self, data: bytes, stat: os.stat_result) -> None:
        """We replaced the file by one holding ``data`` (complete lines)."""
        self.forget()
        self.appended(data, stat)
