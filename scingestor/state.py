"""The ingested list: the durable record of what went into SciCat, append-only.

Format (spec 04 §4, unchanged from the original ingestor): one line per record,
``<line> <t_dataset> <t_datablock> <t_attachment>\\n``; the last record of a key
wins. How it is written and read is described in docs/architecture.md "The
ingested list" and README "What we changed" (crash safety):

* every record is appended with one ``write`` of the whole line (``\\n`` last)
  and fsynced; only ``\\n``-terminated lines are records, so a line torn by a
  crash is never read as one, and it is cut off before the next append;
* the file is read incrementally (:class:`~scingestor.follow.FileFollower`):
  our own appends are not read back, another process's appends are read, and
  a file replaced or rewritten by another process (the re-ingestion tool) is
  read again from the start (:attr:`IngestedList.generation` counts that);
* when superseded records outnumber the live ones (and at least
  ``compact_min``), the file is compacted: rewritten atomically (temp file,
  fsync, rename, fsync of the directory) with only the live records.
  :meth:`IngestedList.replace_all` (the re-ingestion pass) writes the same way.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import tempfile
from dataclasses import dataclass
from typing import Iterator, Optional, Tuple

from .follow import FileFollower

logger = logging.getLogger(__name__)

#: Compact the file when it holds more than this many superseded records (and
#: more superseded than live ones).
COMPACT_MIN = 1000


@dataclass(frozen=True)
class Stamps:
    """Modification times of the dataset, datablock and attachment files that went in.

    ``0`` means "not sent", ``-1`` "sending failed".
    """

    dataset: float = 0
    datablock: float = 0
    attachment: float = 0

    def render(self) -> str:
        return _render((self.dataset, self.datablock, self.attachment))

    @property
    def complete(self) -> bool:
        """A usable reference for re-ingestion (README "Dataset lists": the ingested list)."""
        return self.dataset > 0 and self.datablock > 0 and self.attachment >= 0


def _number(value: float) -> str:
    if value == int(value) and value in (0, -1):
        return str(int(value))
    return repr(float(value))


def _render(raw: Tuple[float, float, float]) -> str:
    return " ".join(_number(value) for value in raw)


@dataclass(frozen=True)
class Record:
    key: str
    stamps: Optional[Stamps]  # None for legacy lines without stamps


def parse_record(line: str) -> Optional[Record]:
    """Parse one line of an ingested list (``None`` for a blank line)."""
    text = line.strip()
    if not text:
        return None
    tokens = text.split(" ")
    if len(tokens) > 3:
        try:
            stamps = Stamps(*(float(value) for value in tokens[-3:]))
        except ValueError:
            return Record(" ".join(tokens[:-3]), Stamps(0, 0, 0))
        return Record(" ".join(tokens[:-3]), stamps)
    return Record(tokens[0], None)


# -- the live records of one key ---------------------------------------------------------
# In memory a record is ``None`` (a legacy line) or a tuple of three floats, and a key
# keeps only the records some rule still needs: the last record of each kind below.
# Whatever the reader's configuration, the rules of spec 04 §4.2 ("some line is done",
# "the last complete line is the reference", "the last line's stamps") give the same
# answers for these records as for all records of the key, so dropping the others
# (in memory and when compacting) changes nothing - for the original tool either.
Raw = Optional[Tuple[float, float, float]]
_LEGACY, _STAMPED, _COMPLETE, _DONE, _DONE_STRICT = 1, 2, 4, 8, 16
_SHARED = {0.0: 0.0, -1.0: -1.0}


def _kinds(raw: Raw) -> int:
    if raw is None:
        return _LEGACY
    dataset, datablock, attachment = raw
    kinds = _STAMPED
    if dataset > 0 and datablock > 0:
        if attachment >= 0:
            kinds |= _COMPLETE  # a reference for re-ingestion
        if attachment != -1:
            kinds |= _DONE  # ingested
            if attachment > 0:
                kinds |= _DONE_STRICT  # ingested when failed attachments are retried
    return kinds


def _keep(records: Tuple[Raw, ...]) -> Tuple[Raw, ...]:
    """``records`` without those that are not the last of any of their kinds."""
    seen, kept = 0, []
    for raw in reversed(records):
        kinds = _kinds(raw)
        if kinds & ~seen:
            kept.append(raw)
            seen |= kinds
    kept.reverse()
    return tuple(kept)


def _raw(stamps: Optional[Stamps]) -> Raw:
    if stamps is None:
        return None
    values = (float(stamps.dataset), float(stamps.datablock), float(stamps.attachment))
    return tuple(_SHARED.get(value, value) for value in values)  # type: ignore[return-value]


class IngestedList:
    """One ``scicat-ingested-datasets-<id>.lst`` file, kept in memory and on disk."""

    def __init__(
        self,
        path: str,
        *,
        retry_failed: bool = True,
        retry_failed_attachment: bool = False,
        compact_min: int = COMPACT_MIN,
    ) -> None:
        self.path = path
        self._retry_failed = retry_failed
        self._done_kind = _DONE_STRICT if retry_failed_attachment else _DONE
        self._compact_min = compact_min
        self._keys: dict[str, Tuple[Raw, ...]] = {}
        self._live = 0  # records in self._keys
        self._lines = 0  # lines read or written since the file was last (re)written whole
        self._follower = FileFollower(path)
        #: Incremented whenever the list is read again from the start (another process
        #: rewrote it, or :meth:`replace_all`): what was derived from it may be stale.
        self.generation = 0

    # -- reading -------------------------------------------------------------------
    def refresh(self) -> None:
        """Read what another process appended; all of it again if it replaced the file."""
        chunk = self._follower.read()
        if chunk is None:
            if self._keys or self._lines:
                self._clear()
            return
        if chunk.restart:
            self._clear()
        if chunk.lines:
            text = chunk.lines.decode("utf-8", errors="replace")
            for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
                if not line.strip():
                    continue
                self._lines += 1
                record = parse_record(line)
                if record is not None:
                    self._remember(record.key, _raw(record.stamps))

    def _clear(self) -> None:
        self._keys = {}
        self._live = 0
        self._lines = 0
        self.generation += 1

    def _remember(self, key: str, raw: Raw) -> None:
        old = self._keys.pop(key, ())
        new = _keep(old + (raw,))
        self._keys[key] = new  # re-inserted: the dict is in order of last record
        self._live += len(new) - len(old)

    def _kinds_of(self, key: str) -> int:
        kinds = 0
        for raw in self._keys.get(key, ()):
            kinds |= _kinds(raw)
        return kinds

    def is_ingested(self, key: str) -> bool:
        records = self._keys.get(key)
        if not records:
            return False
        if not self._retry_failed:
            return True
        return bool(self._kinds_of(key) & (_LEGACY | self._done_kind))

    def reference(self, key: str) -> Optional[Stamps]:
        """The last complete stamps recorded for ``key``."""
        for raw in reversed(self._keys.get(key, ())):
            if _kinds(raw) & _COMPLETE:
                return Stamps(*raw)  # type: ignore[misc]
        return None

    def last_stamps(self, key: str) -> Optional[Stamps]:
        """The most recent stamps recorded for ``key``, complete or not."""
        for raw in reversed(self._keys.get(key, ())):
            if raw is not None:
                return Stamps(*raw)
        return None

    @property
    def records(self) -> tuple[Record, ...]:
        """The live records, as a compaction would write them."""
        return tuple(Record(key, None if raw is None else Stamps(*raw))
                     for key, records in self._keys.items() for raw in records)

    @property
    def bytes_read(self) -> int:
        """Bytes read from the file so far (tests: a pass reads O(new records))."""
        return self._follower.bytes_read

    # -- writing -------------------------------------------------------------------
    def record(self, key: str, stamps: Stamps) -> None:
        """Append one record durably (one ``write`` of the line, fsync); compact now and then.

        The caller holds :meth:`locked` (as the pipeline does), so no other writer is
        active: a line without ``\\n`` at the end is a torn write of a crashed process
        and is cut off first.
        """
        self.refresh()
        data = f"{key} {stamps.render()}\n".encode()
        directory = os.path.dirname(self.path) or "."
        os.makedirs(directory, exist_ok=True)
        created = not os.path.exists(self.path)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            if self._follower.tail:
                logger.warning("%s: incomplete last line %r (a crash while writing) removed",
                               self.path, self._follower.tail[:80])
                os.ftruncate(fd, self._follower.offset)
            _write_all(fd, data)
            os.fsync(fd)
            self._follower.appended(data, os.fstat(fd))
        finally:
            os.close(fd)
        if created:
            _fsync_dir(directory)
        self._lines += 1
        self._remember(key, _raw(stamps))
        superseded = self._lines - self._live
        if superseded > self._live and superseded >= self._compact_min:
            self.compact()

    def compact(self) -> None:
        """Rewrite the file atomically with the live records only (caller holds the lock)."""
        superseded = self._lines - self._live
        self._write()
        logger.info("%s compacted: %d live record(s), %d superseded dropped",
                    self.path, self._live, superseded)

    def replace_all(self, records: list[Record]) -> None:
        """Replace the whole list (used by the one-pass re-ingestion)."""
        self._clear()
        for record in records:
            self._remember(record.key, _raw(record.stamps))
        self._write()

    def _write(self) -> None:
        lines = []
        for key, records in self._keys.items():
            for raw in records:
                lines.append(key + "\n" if raw is None else f"{key} {_render(raw)}\n")
        data = "".join(lines).encode("utf-8")
        atomic_write(self.path, data)
        self._follower.replaced(data, os.stat(self.path))
        self._lines = self._live

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the list's lock file (shared by the daemon and ``scicat_dataset_ingest``)."""
        directory = os.path.dirname(self.path) or "."
        os.makedirs(directory, exist_ok=True)
        with open(self.path + ".lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _fsync_dir(directory: str) -> None:
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write(path: str, text: str | bytes) -> None:
    """Write ``text`` to ``path`` so that a crash leaves either the old or the new file.

    Temp file in the same directory, fsync, rename over ``path``, fsync of the directory.
    """
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    data = text.encode("utf-8") if isinstance(text, str) else text
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=directory)
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)
