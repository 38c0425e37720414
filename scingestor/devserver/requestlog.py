"""Recorded requests of the development server."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List
from urllib.parse import quote

logger = logging.getLogger(__name__)

_V3_NAMES = {"datasets": "Datasets", "origdatablocks": "OrigDatablocks",
             "attachments": "Attachments"}


@dataclass
class RecordedRequest:
    """One API request as received, with the status it was answered with.

    ``path`` is the raw path without the query string (``%2F`` kept);
    ``status`` is 0 while the request is in progress; ``dropped`` is True
    when the connection was closed without an answer. ``received`` and
    ``answered`` are ``time.monotonic()`` when the request was read and when its
    answer was ready (0 while in progress): the requests in flight at once.
    """

    number: int
    method: str
    path: str
    query: Dict[str, str]
    headers: Dict[str, str]
    body: str
    status: int = 0
    dropped: bool = False
    response: str = field(default="", repr=False)
    received: float = 0.0
    answered: float = 0.0

    def json(self) -> Any:
        """Return the body parsed as JSON (None if empty)."""
        return json.loads(self.body) if self.body else None

    @property
    def v3_path(self) -> str:
        """The same request's path under API v3, without the ``/api/vN/`` root.

        v4 ``datasets``/``origdatablocks``/``attachments`` get their v3 names; a v4
        child listing by filter and a v4 attachment POST become the v3 routes
        below the dataset. Tests compare what either version was asked this way.
        """
        path = re.sub(r"^/api/v\d+/", "", self.path)
        head, _, rest = path.partition("/")
        name = _V3_NAMES.get(head.lower(), head)
        pid = ""
        if not rest and name in ("OrigDatablocks", "Attachments"):
            if self.method == "GET" and "filter" in self.query:
                where = json.loads(self.query["filter"]).get("where", {})
                pid = where.get("datasetId") or where.get("relationships.targetId") or ""
            elif self.method == "POST" and name == "Attachments":
                links = (self.json() or {}).get("relationships") or [{}]
                pid = links[0].get("targetId", "")
        if pid:
            return f"Datasets/{quote(pid, safe='')}/{name}"
        if name == "Attachments" and rest:
            return f"Datasets/*/Attachments/{rest}"
        return f"{name}/{rest}" if rest else name

    def to_dict(self) -> Dict[str, Any]:
        """Return the record as JSON-ready data."""
        return asdict(self)


class RequestLog:
    """Thread-safe, numbered list of :class:`RecordedRequest`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: List[RecordedRequest] = []
        self._counter = 0

    def add(self, method: str, path: str, query: Dict[str, str], headers: Dict[str, str],
            body: str) -> RecordedRequest:
        """Record a new request and return its record."""
        with self._lock:
            self._counter += 1
            record = RecordedRequest(self._counter, method, path, query, headers, body,
                                     received=time.monotonic())
            self._items.append(record)
            return record

    def items(self) -> List[RecordedRequest]:
        """Return a snapshot of the records, oldest first."""
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        """Forget every record and restart numbering at 1."""
        with self._lock:
            self._items.clear()
            self._counter = 0
