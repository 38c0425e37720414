"""What happened to the recent scans: a bounded, in-memory history of ingestion outcomes.

The service adds one :class:`IngestionRecord` per outcome (scan or measurement);
the Tango device (``RecentIngestions``, ``ScansPerMinute``, ``LastIngestionTime``),
the panel and the spock macros read it. It is not state: a restart empties it (the
failed scans are re-derived from the ingested lists, see
:meth:`scingestor.service.IngestorService.failed_scans`). It costs a bounded deque
and a few counters, no disk.
"""

from __future__ import annotations

import collections
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, Deque, Dict, Optional, Tuple

__all__ = ["RESULTS", "FailedScan", "History", "IngestionRecord", "dataset_url", "result_of"]

#: The values of :attr:`IngestionRecord.result`.
RESULTS = ("created", "patched", "new_version", "unchanged", "failed")
#: How many outcomes the history keeps.
HISTORY_LENGTH = 200


@dataclass(frozen=True)
class IngestionRecord:
    """One outcome: a scan (or measurement) line of a dataset list, and what SciCat got."""

    time: float  # epoch seconds
    scandir: str
    list_path: str
    scan: str
    line: str
    pid: str
    result: str  # one of RESULTS
    datablocks: int
    thumbnails: int
    message: str  # the server's (or the generator's) message on failure

    @property
    def ok(self) -> bool:
        return self.result != "failed"

    def to_dict(self) -> Dict[str, Any]:
        return _flat_dict(self)


@dataclass(frozen=True)
class FailedScan:
    """A scan that failed and waits for a retry, or was recorded as failed."""

    scandir: str
    list_path: str
    scan: str
    line: str
    message: str
    retry_at: float  # epoch seconds of the automatic retry; 0 = no automatic retry

    def to_dict(self) -> Dict[str, Any]:
        return _flat_dict(self)


def _flat_dict(item: Any) -> Dict[str, Any]:
    """The fields of a flat dataclass (its ``__dict__``; ``asdict`` deep-copies, ~20x slower)."""
    return dict(vars(item))


def result_of(failed: bool, action: str, datablocks: int, thumbnails: int) -> str:
    """The :data:`RESULTS` value of an outcome (``action``: ``EntryOutcome.action``)."""
    if failed:
        return "failed"
    if action in ("created", "patched", "new_version"):
        return action
    return "patched" if datablocks or thumbnails else "unchanged"


def dataset_url(web_url: str, pid: str) -> str:
    """The catalogue's page of dataset ``pid``: ``{web_url}/datasets/{url-encoded pid}``.

    ``''`` when either is empty (no ``scicat_web_url`` configured, or no pid).
    """
    if not web_url or not pid:
        return ""
    return f"{web_url.rstrip('/')}/datasets/{urllib.parse.quote(pid, safe='')}"


class History:
    """The last ``maxlen`` outcomes, the ingestion rate and the last success; thread-safe.

    ``version`` changes with every record, so an adapter can tell cheaply whether
    anything is new. The rate counts successful outcomes per second of arrival in
    at most ``max_window`` one-second buckets, so it stays exact when more than
    ``maxlen`` scans arrive within the window.
    """

    def __init__(self, maxlen: int = HISTORY_LENGTH, max_window: float = 3600.0,
                 clock: Any = time.time) -> None:
        self._lock = threading.Lock()
        self._records: Deque[IngestionRecord] = collections.deque(maxlen=maxlen)
        self._buckets: Deque[list] = collections.deque()  # [second, count], oldest first
        self._max_window = max_window
        self._clock = clock
        self._version = 0
        self._last_success = 0.0

    @property
    def version(self) -> int:
        with self._lock:
            return self._version

    def add(self, record: IngestionRecord) -> None:
        with self._lock:
            self._records.append(record)
            self._version += 1
            if record.ok:
                self._last_success = max(self._last_success, record.time)
                self._count(int(record.time))
            self._expire(self._clock())

    def _count(self, second: int) -> None:
        buckets = self._buckets
        if not buckets or buckets[-1][0] < second:
            buckets.append([second, 1])
            return
        for index in range(len(buckets) - 1, -1, -1):  # out of order: rare, keep sorted
            if buckets[index][0] == second:
                buckets[index][1] += 1
                return
            if buckets[index][0] < second:
                buckets.insert(index + 1, [second, 1])
                return
        buckets.appendleft([second, 1])

    def _expire(self, now: float) -> None:
        oldest = now - self._max_window
        while self._buckets and self._buckets[0][0] < oldest - 1:
            self._buckets.popleft()

    def records(self) -> Tuple[IngestionRecord, ...]:
        """The outcomes kept, newest first."""
        with self._lock:
            return tuple(reversed(self._records))

    def rate(self, per_seconds: float = 60.0, window: float = 300.0,
             now: Optional[float] = None) -> float:
        """Successful outcomes per ``per_seconds`` over the last ``window`` seconds."""
        now = self._clock() if now is None else now
        start = now - min(window, self._max_window)
        with self._lock:
            self._expire(now)
            count = sum(n for second, n in self._buckets if second >= int(start))
        return count * per_seconds / window if window > 0 else 0.0

    def active(self, window: float = 300.0, now: Optional[float] = None) -> bool:
        """True while a success lies within the last ``window`` seconds (the rate is > 0)."""
        now = self._clock() if now is None else now
        with self._lock:
            return bool(self._buckets) and self._buckets[-1][0] >= int(now - window)

    def last_success(self) -> float:
        """Epoch seconds of the last successful outcome; 0 when none."""
        with self._lock:
            return self._last_success

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
            self._buckets.clear()
            self._last_success = 0.0
            self._version += 1
