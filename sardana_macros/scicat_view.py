"""spock macros: what happened to my scans (docs/sardana.md "scicat_status, scicat_reingest").

* ``scicat_status [conf]`` - the ingestor's state and queue, the recent outcomes and
  the failed scans of the scan directory (``ScanDir``);
* ``scicat_reingest [scan] [conf]`` - send a scan again now: a failed scan is retried
  at once, any other scan is re-ingested (``<scan>:<time>``); without a scan, every
  failed scan of the directory.

As the measurement macros (``scingestor_macros``): with ``SciCatIngestorDevice`` (or
``conf``) naming a reachable ``SciCatIngestor`` device they ask it (``…In`` commands,
the directory travels with the command); otherwise they read and append to the
dataset list file and read the ingested list beside it (its default name,
``scicat-ingested-datasets-…``; an ingestor that keeps it in its var dir is only
seen through the device).
"""

from __future__ import annotations

import datetime
import json
import os
from typing import Any, Dict, List, Optional, Tuple

import tango
from sardana.macroserver.macro import Macro, Type

from scingestor import listproto
from scingestor.failures import failed_lines
from scingestor.state import Record, Stamps

try:  # loaded from the MacroPath directory: the helpers are sibling modules
    import scicat_records as records
    import scingestor_macros as common
except ImportError:  # imported as part of the installed package
    from sardana_macros import scicat_records as records
    from sardana_macros import scingestor_macros as common

__all__ = ["scicat_status", "scicat_reingest"]

#: How many recent outcomes ``scicat_status`` shows.
SHOWN = 10
_CONF = ["conf", Type.String, "", "SciCatIngestor device name, or 'file'"]


def _when(stamp: float) -> str:
    if not stamp:
        return "never"
    return datetime.datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M:%S")


def _retry_text(retry_at: float) -> str:
    return f"retry at {_when(retry_at)}" if retry_at else "no automatic retry"


def _same(path: str, other: str) -> bool:
    return os.path.normpath(path) == os.path.normpath(other)


def _read_json(device: Any, name: str) -> List[Dict[str, Any]]:
    return list(json.loads(device.read_attribute(name).value or "[]"))


def ingested_path(list_path: str) -> str:
    """The ingested list beside ``list_path`` under the default names."""
    directory, name = os.path.split(list_path)
    return os.path.join(directory, name.replace("scicat-datasets-", "scicat-ingested-datasets-",
                                                1))


def read_ingested(path: str) -> List[Tuple[str, Tuple[float, ...]]]:
    """``(line, stamps)`` of an ingested list, in file order (legacy lines: no stamps)."""
    found: List[Tuple[str, Tuple[float, ...]]] = []
    if not os.path.isfile(path):
        return found
    with open(path, encoding="utf-8", errors="replace") as handle:
        for text in handle:
            tokens = text.strip().split(" ")
            if not tokens[0]:
                continue
            try:
                stamps = tuple(float(value) for value in tokens[-3:]) if len(tokens) > 3 else ()
            except ValueError:
                stamps = ()
            found.append((" ".join(tokens[:-3]) if stamps else tokens[0], stamps))
    return found


def file_status(list_path: str) -> Tuple[int, List[Tuple[str, str]], List[str]]:
    """From the files: ``(waiting, [(line, 'ingested'|'failed')] newest first, failed lines)``."""
    entries = [entry for entry in listproto.read_entries(list_path)
               if not entry.is_command and entry.kind is not listproto.EntryKind.INVALID]
    found = read_ingested(ingested_path(list_path))
    latest: Dict[str, Tuple[float, ...]] = dict(found)
    # the service's rule (scingestor.failures.failed_lines): a later successful
    # re-ingest line settles a scan; the recent outcomes keep each line's own result
    failed = failed_lines(Record(line, Stamps(*stamps) if stamps else None)
                          for line, stamps in found)
    recent, seen = [], set()
    for line, _stamps in reversed(found):
        if line not in seen:
            seen.add(line)
            recent.append((line, "failed" if -1 in latest[line] else "ingested"))
    waiting = sum(1 for entry in entries if entry.line not in latest)
    return waiting, recent, failed


class scicat_status(Macro):
    """Show what happened to the scans of the scan directory.

    The ingestor's state, queue and ingestion rate, the recent outcomes (newest
    first, with the server's message on failure) and the failed scans of the
    directory, through the ingestor device (``SciCatIngestorDevice`` or ``conf``),
    or read from the dataset list and the ingested list when there is none.
    """

    param_def = [_CONF]

    def run(self, conf: str) -> None:
        prepared = common._prepare(self)
        if prepared is None:
            return
        env, directory = prepared
        try:
            list_path = records.list_file(env)
        except records.RecordError as exc:
            self.error("%s", exc)
            return
        device = common._device(self, env, conf, fallback="reading the list files")
        if device is not None and self._from_device(device, directory, list_path):
            return
        self._from_files(directory, list_path)

    def _from_device(self, device: Any, directory: str, list_path: str) -> bool:
        try:
            state, status = device.state(), device.status()
            values = {name: device.read_attribute(name).value for name in (
                "QueueLength", "ScansPerMinute", "LastIngestionTime", "PendingRetries")}
            recent = _read_json(device, "RecentIngestions")
            failed = _read_json(device, "FailedScans")
        except (tango.DevFailed, ValueError) as exc:
            self.warning("SciCat ingestor device '%s' cannot be read (%s): reading the list "
                         "files", device.dev_name(), common._reason(exc))
            return False
        self.output("SciCat ingestor '%s': %s - %s", device.dev_name(), state, status)
        self.output("Queue: %d scan(s) waiting, %d waiting for a retry; %.1f scans/min; "
                    "last ingestion %s", values["QueueLength"], values["PendingRetries"],
                    values["ScansPerMinute"], _when(values["LastIngestionTime"]))
        mine = [item for item in recent if _same(item["list_path"], list_path)][:SHOWN]
        if mine:
            self.output("Recent ingestions in '%s' (newest first):", directory)
        else:
            self.output("No recent ingestion in '%s'", directory)
        for item in mine:
            text = f"  {_when(item['time'])}  {item['scan']}  {item['result']}"
            text += f"  {item.get('url') or item['pid']}" if item["pid"] else ""
            text += f"  {item['message']}" if item["message"] else ""
            self.output("%s", text)
        self._failed([(item["line"], item["message"], _retry_text(item["retry_at"]))
                      for item in failed if _same(item["list_path"], list_path)], directory)
        return True

    def _from_files(self, directory: str, list_path: str) -> None:
        try:
            waiting, recent, failed = file_status(list_path)
        except (OSError, listproto.ListProtocolError) as exc:
            self.error("SciCat list file cannot be read: %s", exc)
            return
        ingested = ingested_path(list_path)
        self.output("SciCat list %s (no ingestor device): %d scan(s) not ingested yet",
                    list_path, waiting)
        if not os.path.isfile(ingested):
            self.output("No ingested list at %s", ingested)
        elif recent:
            self.output("Recent ingestions in '%s' (newest first):", directory)
        for line, result in recent[:SHOWN]:
            self.output("  %s  %s", line, result)
        self._failed([(line, "recorded as failed", "") for line in failed], directory)

    def _failed(self, failed: List[Tuple[str, str, str]], directory: str) -> None:
        if not failed:
            self.output("No failed scan in '%s'", directory)
            return
        self.output("Failed scans in '%s' (scicat_reingest <scan> sends one now):", directory)
        for line, message, retry in failed:
            self.output("  %s: %s%s", line, message, f" ({retry})" if retry else "")


class scicat_reingest(Macro):
    """Send a scan to SciCat again now.

    A failed scan is retried at once (ignoring its back-off); any other scan is
    re-ingested (``<scan>:<time>`` in the dataset list). Without a scan: every
    failed scan of the scan directory. Through the ingestor device
    (``SciCatIngestorDevice`` or ``conf``), else by appending to the list file.
    """

    param_def = [["scan", Type.String, "", "scan name ('' = the failed scans)"], _CONF]

    def run(self, scan: str, conf: str) -> None:
        scan = scan.strip()
        if scan:
            try:
                scan = listproto.check_name(scan, subdir=True)
            except listproto.UnsafeNameError as exc:
                self.error("%s", exc)
                return
        prepared = common._prepare(self)
        if prepared is None:
            return
        env, directory = prepared
        device = common._device(self, env, conf)
        if device is not None and self._through_device(device, directory, scan):
            return
        self._through_file(env, directory, scan)

    def _through_device(self, device: Any, directory: str, scan: str) -> bool:
        failed = self._failed_on_device(device, directory)
        if failed is None:
            return False
        if not scan or scan in failed:
            done, count = common._device_command(self, device, directory, "RetryFailedIn", scan)
            if done:
                self.output("%d failed scan(s) in '%s' sent again", count or 0, directory)
            return done
        done, _ = common._device_command(self, device, directory, "ReingestIn", scan)
        if done:
            self.output("Scan '%s' in '%s' re-ingested", scan, directory)
        return done

    def _failed_on_device(self, device: Any, directory: str) -> Optional[List[str]]:
        try:
            items = _read_json(device, "FailedScans")
        except (tango.DevFailed, ValueError) as exc:
            self.warning("SciCat ingestor device '%s' cannot be read (%s): writing the list "
                         "file directly", device.dev_name(), common._reason(exc))
            return None
        return [name for item in items if _same(item["scandir"], directory)
                for name in (item["scan"], item["line"])]

    def _through_file(self, env: Dict[str, Any], directory: str, scan: str) -> None:
        if scan:
            names = [scan]
        else:
            try:
                _, _, failed = file_status(records.list_file(env))
            except (OSError, records.RecordError, listproto.ListProtocolError) as exc:
                self.error("SciCat list file cannot be read: %s", exc)
                return
            names = sorted({listproto.parse_entry(line).scanname for line in failed})
            if not names:
                self.output("No failed scan in '%s'", directory)
                return
        written = common._write(self, env, directory, lambda _current: [
            listproto.reingest_record(name) for name in names])
        if written is not None:
            self.output("%d scan(s) in '%s' sent again", len(names), directory)
