"""Compare a local document with the server copy, ignoring what only the server adds.

A real SciCat fills in many fields of its own (``_id``, ``__v``, ``createdAt``,
``instrumentIds``, ``datasetlifecycle``, ``valueSI``/``unitSI`` beside a
``unit`` …) and normalises dates (``…:00Z`` → ``…:00.000Z``). None of that is a
change of the scan; see README "SciCat access".
"""

from __future__ import annotations

import datetime
import json
import logging
import re
from typing import Any, Dict, Iterable, List, Optional, Tuple

logger = logging.getLogger(__name__)

#: Where keys only the server has still count: a metadata entry removed locally.
OWN_KEYS_COUNT_UNDER = frozenset({"scientificMetadata"})

_ISO = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2})?)(?:[.,](\d+))?"
    r"(Z|[+-]\d{2}(?::?\d{2})?)?$")


def as_instant(value: Any) -> Optional[datetime.datetime]:
    """An ISO 8601 date-time string as an aware datetime (ms precision), else None."""
    if not isinstance(value, str):
        return None
    match = _ISO.match(value.strip())
    if not match:
        return None
    date, clock, fraction, zone = match.groups()
    if len(clock) == 5:
        clock += ":00"
    micro = (fraction or "0")[:6].ljust(6, "0")
    millis = micro[:3] + "000"
    if not zone or zone == "Z":
        zone = "+00:00"
    elif ":" not in zone:
        zone = zone[:3] + ":" + (zone[3:] or "00")
    try:
        return datetime.datetime.fromisoformat(f"{date}T{clock}.{millis}{zone}")
    except ValueError:
        return None


def same_value(server: Any, local: Any) -> bool:
    """Equal, the same instant written differently, or a value the server keeps as a list.

    SciCat stores e.g. a derived dataset's ``usedSoftware: "x"`` as ``["x"]``.
    """
    if server == local:
        return True
    if isinstance(server, list) and len(server) == 1 and not isinstance(local, (list, dict)):
        return same_value(server[0], local)
    left, right = as_instant(server), as_instant(local)
    return left is not None and right is not None and left == right


def differences(server: Any, local: Any, skip: Iterable[str] = (), prefix: str = "") -> List[str]:
    """The dotted paths where ``local`` differs from ``server`` (empty: equal).

    Paths in ``skip`` are ignored. Keys only the server has are ignored
    (server-managed fields), except non-null ones directly below
    ``scientificMetadata`` (an entry removed locally). Objects and equally long
    lists are compared element by element; dates as instants (ms precision).
    """
    skipped = set(skip)
    return _diff(server, local, skipped, prefix, own_keys_count=prefix in OWN_KEYS_COUNT_UNDER)


def _diff(server: Any, local: Any, skip: set, path: str, own_keys_count: bool) -> List[str]:
    if isinstance(server, dict) and isinstance(local, dict):
        found: List[str] = []
        for key in sorted(set(server) | set(local), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if sub in skip:
                continue
            if key not in local:
                if own_keys_count and server[key] is not None:
                    found.append(sub)
            elif key not in server:
                found.append(sub)
            else:
                found.extend(_diff(server[key], local[key], skip, sub,
                                   own_keys_count=sub in OWN_KEYS_COUNT_UNDER))
        return found
    if (isinstance(server, list) and isinstance(local, list) and len(server) == len(local)
            and server != local):
        found = []
        for index, (left, right) in enumerate(zip(server, local)):
            found.extend(_diff(left, right, skip, f"{path}.{index}" if path else str(index),
                               own_keys_count=False))
        return [path or "."] if found else []
    return [] if same_value(server, local) else [path or "."]


def compare_dataset(server: Dict[str, Any], local: Dict[str, Any],
                    skip: Iterable[str]) -> Tuple[List[str], List[str]]:
    """(core differences, scientificMetadata differences) of two datasets in one form."""
    key = "scientificMetadata"
    core = differences(server, local, tuple(skip) + (key,))
    if key in local:
        if isinstance(server.get(key), dict) and isinstance(local[key], dict):
            scientific = differences(server[key], local[key], (), key)
        else:
            scientific = [] if same_value(server.get(key), local[key]) else [key]
    else:
        scientific = []
    return core, scientific


def file_signature(block: Dict[str, Any]) -> Tuple:
    """Identity of a datablock: its sorted (path, size) pairs."""
    files = block.get("dataFileList") or []
    return tuple(sorted((str(f.get("path")), f.get("size")) for f in files
                        if isinstance(f, dict)))


def thumbnail_key(attachment: Dict[str, Any]) -> str:
    """Identity of an attachment: its thumbnail."""
    return json.dumps(attachment.get("thumbnail"), sort_keys=True)
