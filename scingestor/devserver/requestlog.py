"""Recorded requests of the development server."""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List

logger = logging.getLogger(__name__)


@dataclass
class RecordedRequest:
    """One API request as received, with the status it was answered with.

    ``path`` is the raw path without the query string (``%2F`` kept);
    ``status`` is 0 while the request is in progress; ``dropped`` is True
    when the connection was closed without an answer.
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

    def json(self) -> Any:
        """Return the body parsed as JSON (None if empty)."""
        return json.loads(self.body) if self.body else None

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
            record = RecordedRequest(self._counter, method, path, query, headers, body)
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
