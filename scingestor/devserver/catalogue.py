"""Store operations shared by the v3 and v4 APIs of the dev server.

Both API versions read and write the same documents; they differ in field
names, validation and views (``docs/devserver.md``).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, Dict, List, Optional, Tuple

from .auth import User
from .documents import (
    attachment_target,
    datafiles,
    finish_dataset,
    link_dataset,
    new_attachment,
    new_datablock,
    unit_conflicts,
)
from .routing import ApiOptions, Response, error, forbidden, matches, not_found, now_iso
from .store import DuplicateError, Store

logger = logging.getLogger(__name__)


class Catalogue:
    """Datasets, OrigDatablocks and attachments in one :class:`Store`."""

    def __init__(self, store: Store, options: ApiOptions) -> None:
        self.store = store
        self.options = options

    # -- datasets ------------------------------------------------------------------

    def new_pid(self, given: Optional[str]) -> str:
        """The pid a new dataset gets (``pid_prefix`` added, uuid if none given)."""
        prefix = self.options.pid_prefix
        pid = given or f"{prefix}{uuid.uuid4()}"
        if prefix and not pid.startswith(prefix):
            pid = prefix + pid
        return pid

    def insert_dataset(self, doc: Dict[str, Any]) -> Optional[Response]:
        """Store a new dataset; a 409 response if the pid exists."""
        try:
            self.store.insert("datasets", doc["pid"], doc)
        except DuplicateError:
            return error(409, f"A dataset with pid {doc['pid']} already exists!", "Conflict")
        return None

    def readable_dataset(self, user: User, pid: str, missing: Response
                         ) -> Tuple[Optional[Dict[str, Any]], Response]:
        """The dataset or (None, ``missing`` / 403)."""
        doc = self.store.get("datasets", pid)
        if doc is None:
            return None, missing
        if not user.can_read(doc):
            return None, forbidden()
        return doc, Response(200)

    def datasets(self, user: User, where: Dict[str, Any]) -> List[Dict[str, Any]]:
        """Readable datasets matching ``where``."""
        return [doc for doc in self.store.list("datasets")
                if user.can_read(doc) and matches(doc, where)]

    def save_dataset(self, user: User, doc: Dict[str, Any]) -> None:
        """Write back a changed dataset (server fields refreshed)."""
        finish_dataset(doc)
        doc.update({"updatedBy": user.username, "updatedAt": now_iso()})
        self.store.replace("datasets", doc["pid"], doc)

    def delete_dataset(self, pid: str, with_datablocks: bool) -> None:
        """Remove a dataset (v4 also removes its OrigDatablocks; attachments stay)."""
        if with_datablocks:
            for block in self.store.list("origdatablocks", parent=pid):
                self.store.delete("origdatablocks", block["_id"])
        self.store.delete("datasets", pid)

    def delete_forbidden(self) -> Optional[Response]:
        """403 when the accounts are not in ``DELETE_GROUPS`` (datasets, OrigDatablocks)."""
        return None if self.options.datablock_delete_allowed else forbidden()

    # -- OrigDatablocks ------------------------------------------------------------

    def update_dataset_size(self, pid: str) -> None:
        """Recompute ``size`` and ``numberOfFiles`` of a dataset from its blocks."""
        doc = self.store.get("datasets", pid)
        if doc is None:
            return
        blocks = self.store.list("origdatablocks", parent=pid)
        doc["size"] = sum(block.get("size", 0) for block in blocks)
        doc["numberOfFiles"] = sum(len(block.get("dataFileList", [])) for block in blocks)
        self.store.replace("datasets", pid, doc)

    def datablocks(self, user: User, where: Dict[str, Any],
                   pid: Optional[str] = None) -> List[Dict[str, Any]]:
        """Readable OrigDatablocks (of dataset ``pid``) matching ``where``."""
        return [doc for doc in self.store.list("origdatablocks", parent=pid)
                if user.can_read(doc) and matches(doc, where)]

    def create_datablock(self, user: User, body: Dict[str, Any]
                         ) -> Tuple[Optional[Dict[str, Any]], Response]:
        """Store a validated block (no uniqueness; groups from the dataset)."""
        pid = body["datasetId"]
        dataset = self.store.get("datasets", pid)
        if dataset is None:
            return None, not_found(f"Dataset: {pid} not found for attaching an origdatablock")
        doc = new_datablock(body, user, dataset)
        self.store.insert("origdatablocks", doc["_id"], doc, parent=pid)
        self.update_dataset_size(pid)
        return doc, Response(201)

    def datablock(self, block_id: str) -> Optional[Dict[str, Any]]:
        """One block or None."""
        return self.store.get("origdatablocks", block_id)

    def patch_datablock(self, user: User, doc: Dict[str, Any],
                        changes: Dict[str, Any]) -> Dict[str, Any]:
        """Replace fields of a block in place; the dataset size is recomputed."""
        changes = dict(changes)
        if "dataFileList" in changes:
            changes["dataFileList"] = datafiles(changes["dataFileList"])
        doc.update(changes)
        doc.update({"updatedBy": user.username, "updatedAt": now_iso()})
        self.store.replace("origdatablocks", doc["_id"], doc)
        self.update_dataset_size(doc.get("datasetId", ""))
        return doc

    def delete_datablock(self, doc: Dict[str, Any]) -> None:
        """Remove a block; the dataset size is recomputed."""
        self.store.delete("origdatablocks", doc["_id"])
        self.update_dataset_size(doc.get("datasetId", ""))

    # -- attachments ---------------------------------------------------------------

    def attachments(self, user: User, where: Dict[str, Any]) -> List[Dict[str, Any]]:
        """Readable attachments matching ``where`` (e.g. ``relationships.targetId``)."""
        return [doc for doc in self.store.list("attachments")
                if user.can_read(doc) and matches(doc, where)]

    def create_attachment(self, user: User, body: Dict[str, Any],
                          aid: Optional[str] = None) -> Optional[Dict[str, Any]]:
        """Store a validated attachment; None if ``aid`` is taken."""
        doc = new_attachment(body, user, aid or str(uuid.uuid4()))
        try:
            self.store.insert("attachments", doc["_id"], doc, parent=attachment_target(doc))
        except DuplicateError:
            return None
        return doc

    def attachment(self, aid: str) -> Optional[Dict[str, Any]]:
        """One attachment or None."""
        return self.store.get("attachments", aid)

    def save_attachment(self, user: User, doc: Dict[str, Any]) -> None:
        """Write back a changed attachment (its dataset link may have changed)."""
        link_dataset(doc)
        doc.update({"updatedBy": user.username, "updatedAt": now_iso()})
        self.store.replace("attachments", doc["_id"], doc, parent=attachment_target(doc))

    def delete_attachment(self, aid: str) -> None:
        """Remove an attachment."""
        self.store.delete("attachments", aid)


def check_unit_patch(pid: str, original: Any, patch: Any) -> Optional[Response]:
    """The 400 of a v4 PATCH leaving out value or unit of a stored quantity."""
    conflicts = unit_conflicts(original, patch)
    if not conflicts:
        return None
    return error(400, f"Original dataset {pid} contains both value and unit in "
                      f"{conflicts[0]}. Please provide both when updating.", "Bad Request")
