"""Thread-safe SQLite document store of the development server."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from typing import Any, Dict, List, Optional

logger = logging.getLogger(__name__)

#: Collections kept by the store.
COLLECTIONS = ("datasets", "origdatablocks", "attachments", "proposals", "samples",
               "instruments")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    collection TEXT NOT NULL,
    id TEXT NOT NULL,
    parent TEXT,
    doc TEXT NOT NULL,
    UNIQUE (collection, id)
);
CREATE INDEX IF NOT EXISTS documents_parent ON documents (collection, parent);
"""


_KEEP = object()


class DuplicateError(Exception):
    """A document with the same id already exists in the collection."""


class Store:
    """JSON documents in SQLite, keyed by collection and id.

    ``path`` is a database file or ``":memory:"``; one connection is shared
    by all threads and guarded by a lock.
    """

    def __init__(self, path: str = ":memory:") -> None:
        self.path = path
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    def insert(self, collection: str, doc_id: str, doc: Dict[str, Any],
               parent: Optional[str] = None) -> None:
        """Insert a new document; raise :class:`DuplicateError` if the id exists."""
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO documents (collection, id, parent, doc) VALUES (?, ?, ?, ?)",
                    (collection, doc_id, parent, json.dumps(doc)))
            except sqlite3.IntegrityError as exc:
                raise DuplicateError(doc_id) from exc

    def replace(self, collection: str, doc_id: str, doc: Dict[str, Any],
                parent: Any = _KEEP) -> bool:
        """Replace an existing document (and its parent if given); False if absent."""
        with self._lock:
            if parent is _KEEP:
                cur = self._db.execute(
                    "UPDATE documents SET doc = ? WHERE collection = ? AND id = ?",
                    (json.dumps(doc), collection, doc_id))
            else:
                cur = self._db.execute(
                    "UPDATE documents SET doc = ?, parent = ? WHERE collection = ? AND id = ?",
                    (json.dumps(doc), parent, collection, doc_id))
            return cur.rowcount > 0

    def get(self, collection: str, doc_id: str) -> Optional[Dict[str, Any]]:
        """Return one document or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT doc FROM documents WHERE collection = ? AND id = ?",
                (collection, doc_id)).fetchone()
        return json.loads(row[0]) if row else None

    def list(self, collection: str, parent: Optional[str] = None) -> List[Dict[str, Any]]:
        """Return the documents of a collection (optionally of one parent), oldest first."""
        with self._lock:
            if parent is None:
                rows = self._db.execute(
                    "SELECT doc FROM documents WHERE collection = ? ORDER BY seq",
                    (collection,)).fetchall()
            else:
                rows = self._db.execute(
                    "SELECT doc FROM documents WHERE collection = ? AND parent = ? ORDER BY seq",
                    (collection, parent)).fetchall()
        return [json.loads(row[0]) for row in rows]

    def delete(self, collection: str, doc_id: str) -> bool:
        """Delete one document; return False if it did not exist."""
        with self._lock:
            cur = self._db.execute(
                "DELETE FROM documents WHERE collection = ? AND id = ?", (collection, doc_id))
            return cur.rowcount > 0

    def clear(self) -> None:
        """Remove every document."""
        with self._lock:
            self._db.execute("DELETE FROM documents")

    def dump(self) -> Dict[str, List[Dict[str, Any]]]:
        """Return every collection with its documents."""
        return {name: self.list(name) for name in COLLECTIONS}
