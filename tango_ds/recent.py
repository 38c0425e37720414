"""What happened to the recent scans, on the ``SciCatIngestor`` device.

The attributes ``RecentIngestions`` and ``FailedScans`` (JSON) and the commands
``RetryFailed``, ``RetryFailedIn`` and ``RetryAllFailed`` (docs/tango.md), as a
base class of :class:`tango_ds.SciCatIngestor.SciCatIngestor`. The scalars
``ScansPerMinute``, ``LastIngestionTime`` and ``SciCatWebUrl`` come from the status
snapshot (:mod:`tango_ds.values`). The JSON texts are made once per change of the
service's history / failed set (the snapshot's ``history_version`` /
``failed_version``), so pushing events stays cheap.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from tango.server import attribute, command

from scingestor.history import dataset_url
from scingestor.service import IngestorService
from scingestor.status import StatusSnapshot
from tango_ds.descriptions import described
from tango_ds.errors import scandir_args

#: The JSON attributes (change events pushed by the device like the others).
RECENT_ATTRIBUTES = ("RecentIngestions", "FailedScans")


def recent_json(service: Optional[IngestorService], web_url: str) -> str:
    """``RecentIngestions``: the history, newest first, with ``url`` when ``web_url`` is set."""
    if service is None:
        return "[]"
    items = []
    for record in service.history():
        item = record.to_dict()
        if web_url:
            item["url"] = dataset_url(web_url, record.pid)
        items.append(item)
    return json.dumps(items)


def failed_json(service: Optional[IngestorService]) -> str:
    """``FailedScans``: the failed set as a JSON list."""
    if service is None:
        return "[]"
    return json.dumps([scan.to_dict() for scan in service.failed_scans()])


class RecentScansInterface:
    """The device's history attributes and retry commands (mixed into the device class).

    Uses the device's ``_service``, ``_scandir``, ``_snapshot()`` and ``_call()``.
    """

    _service: Optional[IngestorService]
    _scandir: str
    _snapshot: Callable[[], StatusSnapshot]
    _call: Callable[..., Any]
    _recent_cache: Dict[str, Tuple[Any, str]]

    def _recent_values(self, snapshot: StatusSnapshot) -> Dict[str, str]:
        """``RecentIngestions`` and ``FailedScans``, recomputed only when they changed."""
        cache = self._recent_cache
        service = self._service
        keys = {
            "RecentIngestions": (id(service), snapshot.history_version, snapshot.scicat_web_url),
            "FailedScans": (id(service), snapshot.failed_version),
        }
        values = {}
        for name, key in keys.items():
            cached = cache.get(name)
            if cached is None or cached[0] != key:
                text = (recent_json(service, snapshot.scicat_web_url)
                        if name == "RecentIngestions" else failed_json(service))
                cached = cache[name] = (key, text)
            values[name] = cached[1]
        return values

    @attribute(dtype=str, **described("RecentIngestions"))
    def RecentIngestions(self) -> str:
        return self._recent_values(self._snapshot())["RecentIngestions"]

    @attribute(dtype=str, **described("FailedScans"))
    def FailedScans(self) -> str:
        return self._recent_values(self._snapshot())["FailedScans"]

    @attribute(dtype=float, **described("ScansPerMinute"))
    def ScansPerMinute(self) -> float:
        return float(self._snapshot().scans_per_minute)

    @attribute(dtype=float, **described("LastIngestionTime"))
    def LastIngestionTime(self) -> float:
        return float(self._snapshot().last_success_time)

    @attribute(dtype=str, **described("SciCatWebUrl"))
    def SciCatWebUrl(self) -> str:
        return self._snapshot().scicat_web_url

    @command(dtype_in=str, doc_in="a failed scan: its list line or scan name ('' = all); "
             "looked for in ScanDir, or in every directory when ScanDir is empty",
             dtype_out="DevLong", doc_out="how many failed scans were rescheduled")
    def RetryFailed(self, name: str) -> int:
        """Run a failed scan (of ScanDir, or any directory) now, ignoring its back-off."""
        return self._call("RetryFailed",
                          lambda service: service.retry_failed(name.strip(), self._scandir))

    @command(dtype_in=(str,), doc_in="[scandir, scan]; empty scan = every failed scan of "
             "the directory", dtype_out="DevLong", doc_out="how many failed scans were rescheduled")
    def RetryFailedIn(self, argin: Sequence[str]) -> int:
        """RetryFailed in the scan directory given: ``[scandir, scan]``."""
        scandir, name = scandir_args("RetryFailedIn", argin, ["scan"])
        return self._call("RetryFailedIn",
                          lambda service: service.retry_failed(name.strip(), scandir))

    @command(dtype_out="DevLong", doc_out="how many failed scans were rescheduled")
    def RetryAllFailed(self) -> int:
        """Run every failed scan of every directory now, ignoring the back-off."""
        return self._call("RetryAllFailed", lambda service: service.retry_failed("", ""))
