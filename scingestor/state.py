"""The ingested list: the durable record of what went into SciCat, written atomically."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import tempfile
from dataclasses import dataclass
from typing import Iterator, Optional

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stamps:
    """Modification times of the dataset, datablock and attachment files that went in.

    ``0`` means "not sent", ``-1`` "sending failed".
    """

    dataset: float = 0
    datablock: float = 0
    attachment: float = 0

    def render(self) -> str:
        return " ".join(_number(value) for value in (self.dataset, self.datablock, self.attachment))

    @property
    def complete(self) -> bool:
        """A usable reference for re-ingestion (README "Dataset lists": the ingested list)."""
        return self.dataset > 0 and self.datablock > 0 and self.attachment >= 0


def _number(value: float) -> str:
    if value == int(value) and value in (0, -1):
        return str(int(value))
    return repr(float(value))


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


class IngestedList:
    """One ``scicat-ingested-datasets-<id>.lst`` file, kept in memory and on disk."""

    def __init__(
        self,
        path: str,
        *,
        retry_failed: bool = True,
        retry_failed_attachment: bool = False,
    ) -> None:
        self.path = path
        self._retry_failed = retry_failed
        self._retry_attachment = retry_failed_attachment
        self._records: list[Record] = []
        self._done: set[str] = set()
        self._reference: dict[str, Stamps] = {}
        self._stamp: Optional[tuple[int, int, float, int]] = None

    # -- reading -------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read the file if another process (e.g. the re-ingestion tool) changed it."""
        stamp = _file_stamp(self.path)
        if stamp == self._stamp:
            return
        records: list[Record] = []
        if stamp is not None:
            with open(self.path, encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    record = parse_record(line)
                    if record is not None:
                        records.append(record)
        self._records = []
        self._done.clear()
        self._reference.clear()
        for record in records:
            self._remember(record)
        self._stamp = stamp

    def _remember(self, record: Record) -> None:
        self._records.append(record)
        stamps = record.stamps
        if stamps is None or not self._retry_failed or self._counts_as_done(stamps):
            self._done.add(record.key)
        if stamps is not None and stamps.complete:
            self._reference[record.key] = stamps

    def _counts_as_done(self, stamps: Stamps) -> bool:
        if stamps.dataset <= 0 or stamps.datablock <= 0 or stamps.attachment == -1:
            return False
        return not (self._retry_attachment and stamps.attachment <= 0)

    def is_ingested(self, key: str) -> bool:
        return key in self._done

    def reference(self, key: str) -> Optional[Stamps]:
        """The last complete stamps recorded for ``key``."""
        return self._reference.get(key)

    def last_stamps(self, key: str) -> Optional[Stamps]:
        """The most recent stamps recorded for ``key``, complete or not."""
        for record in reversed(self._records):
            if record.key == key and record.stamps is not None:
                return record.stamps
        return None

    @property
    def records(self) -> tuple[Record, ...]:
        return tuple(self._records)

    # -- writing -------------------------------------------------------------------
    def record(self, key: str, stamps: Stamps) -> None:
        """Add one record and replace the file atomically (temp file, fsync, rename)."""
        self._remember(Record(key, stamps))
        self._write()

    def replace_all(self, records: list[Record]) -> None:
        """Replace the whole list (used by the one-pass re-ingestion)."""
        self._records = []
        self._done.clear()
        self._reference.clear()
        for record in records:
            self._remember(record)
        self._write()

    def _write(self) -> None:
        lines = []
        for record in self._records:
            if record.stamps is None:
                lines.append(record.key + "\n")
            else:
                lines.append(f"{record.key} {record.stamps.render()}\n")
        atomic_write(self.path, "".join(lines))
        self._stamp = _file_stamp(self.path)

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


def _file_stamp(path: str) -> Optional[tuple[int, int, float, int]]:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return (stat.st_dev, stat.st_ino, stat.st_mtime, stat.st_size)


def atomic_write(path: str, text: str) -> None:
    """Write ``text`` to ``path`` so that a crash leaves either the old or the new file."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=directory)
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
