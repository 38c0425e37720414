"""The service's failed set: the scans that failed and wait for a retry, or were recorded failed.

Fed by the ingestion outcomes, and re-derived from the ingested lists (``-1``
stamps, :func:`failed_lines`) the first time the service looks at a list after it
starts, so a restart forgets nothing (README "What happened to my scans",
docs/tango.md ``FailedScans``). Both follow one rule: per list and scan, the
latest outcome of any line of the scan (the plain line or a re-ingest line
``scan:ts``) decides - a success settles the scan, a failure leaves one failed
entry, that line's. Thread-safe; ``version`` changes with every change, so
adapters push events cheaply.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Dict, Iterable, List, Optional, Tuple

from .beamtime import ScanDirContext
from .history import FailedScan
from .listproto import parse_entry
from .state import Record

Key = Tuple[str, str]  # (list path, line)


def scan_of(line: str) -> str:
    """The scan a list line is about (``scan:ts`` and ``scan`` name the same scan)."""
    return parse_entry(line).scanname or line


def _failed(record: Record) -> bool:
    stamps = record.stamps
    return stamps is not None and -1 in (stamps.dataset, stamps.datablock, stamps.attachment)


def failed_lines(records: Iterable[Record]) -> List[str]:
    """The lines of an ingested list that leave their scan failed, in list order.

    ``records``: the list's records in file order (a key's records together, the keys
    in order of their latest record, as :attr:`scingestor.state.IngestedList.records`
    gives them). Per scan, the line with the latest record decides: when that record
    failed (a ``-1`` stamp), the scan is failed with that line; when it succeeded
    (or is a legacy line without stamps), the scan is settled - e.g. a plain line
    recorded ``-1`` and a later re-ingest line ``scan:ts`` that went in.
    """
    latest: Dict[str, Record] = {}
    for record in records:
        scan = scan_of(record.key)
        latest.pop(scan, None)  # re-inserted: in order of the scan's latest record
        latest[scan] = record
    return [record.key for record in latest.values() if _failed(record)]


class FailedSet:
    """The failed scans by ``(list path, line)``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scans: Dict[Key, FailedScan] = {}
        self._derived: set[str] = set()
        self._version = 0

    @property
    def version(self) -> int:
        with self._lock:
            return self._version

    def __len__(self) -> int:
        with self._lock:
            return len(self._scans)

    def pending(self) -> int:
        """How many wait for an automatic retry."""
        with self._lock:
            return sum(1 for scan in self._scans.values() if scan.retry_at > 0)

    def scans(self) -> Tuple[FailedScan, ...]:
        """Every failed scan, by list and line order of failure (oldest first)."""
        with self._lock:
            return tuple(self._scans.values())

    def failed(self, ctx: ScanDirContext, line: str, scan: str, message: str,
               retry_at: float) -> None:
        """``line`` of ``scan`` failed: it replaces any failure of the same scan in the list."""
        key = (ctx.list_path, line)
        with self._lock:
            for old in [old for old, failed in self._scans.items()
                        if old[0] == ctx.list_path and failed.scan == scan]:
                del self._scans[old]  # a new failure moves to the end
            self._scans[key] = FailedScan(ctx.scandir, ctx.list_path, scan, line, message,
                                          retry_at)
            self._version += 1

    def succeeded(self, list_path: str, line: str, scan: str = "") -> None:
        """``line`` went in: it, and any failure of the same ``scan`` in the list, is gone.

        (A re-ingest line ``scan:ts`` that succeeds settles the failed ``scan`` line.)
        """
        with self._lock:
            keys = [key for key, failed in self._scans.items()
                    if key[0] == list_path and (key[1] == line or (scan and failed.scan == scan))]
            for key in keys:
                del self._scans[key]
            if keys:
                self._version += 1

    def derived(self, list_path: str) -> bool:
        """True once the failures recorded in this list's ingested list were added."""
        with self._lock:
            return list_path in self._derived

    def derive(self, ctx: ScanDirContext, recorded: Iterable[Tuple[str, bool]],
               waiting: Iterable[str], now: Optional[float] = None) -> None:
        """Add the failures the ingested list records (``(line, retried)``), once per list.

        ``recorded``: :func:`failed_lines` of the list's ingested list, with ``retried``.

        A line tried again by the next pass (``retried``) is added only when the list
        still holds it (``waiting``); its retry is due now. The others are not retried
        automatically (``retry_failed_dataset_ingestion: false``): ``retry_at`` 0.
        """
        now = time.time() if now is None else now
        present = set(waiting)
        message = f"recorded as failed in {os.path.basename(ctx.ingested_path)}"
        with self._lock:
            self._derived.add(ctx.list_path)
            known = {failed.scan for key, failed in self._scans.items()
                     if key[0] == ctx.list_path}
            for line, retried in recorded:
                scan = scan_of(line)
                if scan in known or (retried and line not in present):
                    continue  # an outcome of this run already decided
                key = (ctx.list_path, line)
                self._scans[key] = FailedScan(ctx.scandir, ctx.list_path, scan, line,
                                              message, now if retried else 0.0)
                self._version += 1

    def drop_list(self, list_path: str) -> None:
        """Forget a list that is no longer watched."""
        with self._lock:
            keys = [key for key in self._scans if key[0] == list_path]
            for key in keys:
                del self._scans[key]
            self._derived.discard(list_path)
            if keys:
                self._version += 1

    def reschedule(self, keys: Iterable[Key], now: Optional[float] = None) -> None:
        """Mark ``keys`` as due now (a retry was asked for)."""
        now = time.time() if now is None else now
        with self._lock:
            for key in keys:
                scan = self._scans.get(key)
                if scan is not None:
                    self._scans[key] = FailedScan(scan.scandir, scan.list_path, scan.scan,
                                                  scan.line, scan.message, now)
                    self._version += 1

    def clear(self) -> None:
        with self._lock:
            self._scans.clear()
            self._derived.clear()
            self._version += 1

    def select(self, name: str = "", list_path: str = "") -> List[FailedScan]:
        """The failed scans of ``list_path`` ('' any) whose line or scan is ``name`` ('' all)."""
        with self._lock:
            return [scan for scan in self._scans.values()
                    if (not list_path or scan.list_path == list_path)
                    and (not name or name in (scan.line, scan.scan))]
