"""The device's history records as table rows (no Qt needed).

``RecentIngestions`` is a JSON list, newest first, of records ``{time, scandir,
list_path, scan, line, pid, result, datablocks, thumbnails, message, url}``;
``FailedScans`` a JSON list of ``{scandir, list_path, scan, line, message, retry_at}``
(docs/tango.md). These functions turn them into what the panel's tables show.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any, Dict, List, Optional, Tuple

logger = logging.getLogger(__name__)

#: result -> (background colour, text shown); unknown results are shown as they come.
RESULTS: Dict[str, Tuple[str, str]] = {
    "created": ("#c8f0c8", "created"),
    "new_version": ("#c8e0f8", "new version"),
    "patched": ("#d8ecf8", "patched"),
    "unchanged": ("#e8e8e8", "unchanged"),
    "failed": ("#f8c0c0", "FAILED"),
}
#: (key, column title) of the recent ingestions table.
RECENT_COLUMNS: Tuple[Tuple[str, str], ...] = (
    ("time", "Time"), ("scan", "Scan"), ("result", "Result"), ("datablocks", "Blocks"),
    ("thumbnails", "Thumbs"), ("pid", "PID"))
#: (key, column title) of the failed scans table.
FAILED_COLUMNS: Tuple[Tuple[str, str], ...] = (
    ("scan", "Scan"), ("message", "Error"), ("retry_at", "Next retry"),
    ("scandir", "Scan directory"))


def parse_records(value: Any) -> List[Dict[str, Any]]:
    """The list of records of a JSON attribute value ([] for None, '' or bad JSON)."""
    if not value:
        return []
    try:
        data = json.loads(value) if isinstance(value, (str, bytes)) else value
    except ValueError as exc:
        logger.warning("cannot decode a history value: %s", exc)
        return []
    if not isinstance(data, list):
        return []
    return [record for record in data if isinstance(record, dict)]


def clock(value: Any, with_date: bool = False) -> str:
    """Epoch seconds (or an ISO string, kept as it is) as local ``HH:MM:SS``."""
    if value in (None, "", 0):
        return ""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return str(value)
    return time.strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S",
                         time.localtime(seconds))


def cell_text(record: Dict[str, Any], key: str) -> str:
    """What the recent/failed table shows for ``key`` of ``record``."""
    value = record.get(key)
    if key in ("time", "retry_at"):
        return clock(value)
    if key == "result":
        return RESULTS.get(str(value), ("", str(value or "")))[1]
    if key == "scandir":
        return str(value or "")
    if value is None:
        return ""
    return str(value)


def tool_tip(record: Dict[str, Any]) -> str:
    """The tool tip of a record's row: the server's message first, then where it came from."""
    lines = []
    message = str(record.get("message") or "").strip()
    if message:
        lines.append(message)
    if record.get("time"):
        lines.append(f"at {clock(record['time'], with_date=True)}")
    if record.get("list_path"):
        lines.append(f"list {record['list_path']}" +
                     (f", line {record['line']!r}" if record.get("line") else ""))
    if record.get("url"):
        lines.append(f"SciCat: {record['url']}")
    return "\n".join(lines)


def result_colour(record: Dict[str, Any]) -> Optional[str]:
    """The background colour of a record's row (None: the default)."""
    return RESULTS.get(str(record.get("result")), (None, ""))[0]


def scan_label(record: Dict[str, Any]) -> str:
    """``scan`` (or the list line) of a record, for messages."""
    scan = str(record.get("scan") or record.get("line") or "?")
    scandir = str(record.get("scandir") or "")
    return f"{scan} in {scandir}" if scandir else scan


def short_dir(path: str, keep: int = 2) -> str:
    """The last ``keep`` components of ``path`` (``…/raw/sample``) for narrow columns."""
    parts = [part for part in str(path).split(os.sep) if part]
    if len(parts) <= keep:
        return str(path)
    return "…/" + "/".join(parts[-keep:])
