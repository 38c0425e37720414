"""The SciCat API dialect: v3 or v4 paths, document conversion, child listing.

``scicat_url`` ending in ``/v4`` selects API v4 (see README "SciCat API v3 and
v4"); anything else is v3, the default. Generated files are always v3-shaped
(that is what ``nxsfileinfo`` writes); :meth:`ApiDialect.dataset_body` turns a
dataset into the form the server speaks, and the publisher compares in that
same form.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple

from .urls import api_version, encode_segment

if TYPE_CHECKING:
    from scingestor.config import IngestorConfig

logger = logging.getLogger(__name__)

#: v3 dataset fields renamed to v4 lists (the v4 backend rejects the v3 names).
V3_TO_V4_LISTS = (
    ("proposalId", "proposalIds"),
    ("sampleId", "sampleIds"),
    ("instrumentId", "instrumentIds"),
    ("principalInvestigator", "principalInvestigators"),
    ("investigator", "principalInvestigators"),
)
#: Fields v4 declares as lists that v3 documents may hold as one string.
V4_LIST_FIELDS = ("inputDatasets", "usedSoftware")
#: v3 dataset fields that v4 keeps to itself (rejected in a v4 body).
V4_SERVER_ONLY = ("version",)
#: Dataset fields a v4 PATCH resets to 0 when they are left out.
V4_PATCH_KEEP = ("size", "numberOfFiles", "packedSize")
#: v3 fields the v3 server stores under another name (compared under that name).
V3_STORED_AS = (("investigator", "principalInvestigator"),)
#: Collections that exist under v4 (everything else lives under v3 only).
V4_MODELS = ("datasets", "origdatablocks", "attachments")


def to_v4_dataset(doc: Dict[str, Any]) -> Dict[str, Any]:
    """A v3-shaped dataset document in v4 form (a v4 document is returned as it is)."""
    out = {k: v for k, v in doc.items() if k not in V4_SERVER_ONLY}
    for old, new in V3_TO_V4_LISTS:
        if old not in out:
            continue
        value = out.pop(old)
        if value in (None, "", []):
            continue
        values = value if isinstance(value, list) else [value]
        merged = list(out.get(new) or [])
        merged += [item for item in values if item not in merged]
        out[new] = merged
    for key in V4_LIST_FIELDS:
        if isinstance(out.get(key), str):
            out[key] = [out[key]]
    return out


def to_v4_attachment(doc: Dict[str, Any], full_pid: str) -> Dict[str, Any]:
    """A v3 attachment (``datasetId``) in v4 form (``relationships``, ``isPublished``)."""
    out = {k: v for k, v in doc.items() if k not in ("datasetId", "id")}
    out["relationships"] = [{"targetId": full_pid, "targetType": "dataset"}]
    out.setdefault("isPublished", False)
    return out


class ApiDialect:
    """Paths and document forms of one SciCat server (v3 or v4)."""

    def __init__(self, cfg: IngestorConfig) -> None:
        self.version = api_version(cfg.scicat_url)
        explicit = cfg.is_explicit
        if self.version == 4:
            self.datasets = cfg.scicat_datasets_path if explicit(
                "scicat_datasets_path") else "datasets"
            self.datablocks = cfg.scicat_datablocks_path if explicit(
                "scicat_datablocks_path") else "origdatablocks"
            self.attachments = "attachments"
        else:
            self.datasets = cfg.scicat_datasets_path
            self.datablocks = cfg.scicat_datablocks_path
            self.attachments = cfg.scicat_attachments_path

    # -- paths -------------------------------------------------------------------------
    def dataset(self, full_pid: str) -> str:
        """Path of one dataset."""
        return f"{self.datasets}/{encode_segment(full_pid)}"

    def datablock(self, block_id: str) -> str:
        """Path of one OrigDatablock."""
        return f"{self.datablocks}/{encode_segment(block_id)}"

    def datablock_listing(self, full_pid: str) -> Tuple[str, Optional[Dict[str, str]]]:
        """(path, query) listing the OrigDatablocks of a dataset."""
        if self.version == 4:
            return self.datablocks, _where({"datasetId": full_pid})
        return f"{self.dataset(full_pid)}/{self.datablocks}", None

    def attachment_collection(self, full_pid: str) -> str:
        """Path attachments of a dataset are posted to."""
        if self.version == 4:
            return self.attachments
        return self.attachments.replace("{pid}", encode_segment(full_pid))

    def attachment_listing(self, full_pid: str) -> Tuple[str, Optional[Dict[str, str]]]:
        """(path, query) listing the attachments of a dataset."""
        if self.version == 4:
            return self.attachments, _where({"relationships.targetId": full_pid})
        return self.attachment_collection(full_pid), None

    def attachment(self, full_pid: str, attachment_id: str) -> str:
        """Path of one attachment."""
        return f"{self.attachment_collection(full_pid)}/{encode_segment(attachment_id)}"

    @property
    def attachment_update_method(self) -> Optional[str]:
        """How an attachment is rewritten in place: v4 PATCH; v3 has no safe way.

        (A v3 ``PUT Datasets/{pid}/Attachments/{aid}`` answers 200 but empties
        the attachment's ``relationships``: it vanishes from the dataset. So on
        v3 a stale thumbnail is deleted first and the new one posted after.)
        """
        return "PATCH" if self.version == 4 else None

    # -- documents ---------------------------------------------------------------------
    def dataset_body(self, doc: Dict[str, Any]) -> Dict[str, Any]:
        """A (v3-shaped) dataset document in this server's form."""
        return to_v4_dataset(doc) if self.version == 4 else dict(doc)

    def comparable_dataset(self, body: Dict[str, Any]) -> Dict[str, Any]:
        """A dataset body as the server will show it, for the comparison only.

        The v3 server keeps a derived dataset's ``investigator`` as
        ``principalInvestigator`` (and answers ``investigator: null``).
        """
        if self.version == 4:
            return body
        out = dict(body)
        for sent, stored in V3_STORED_AS:
            if sent in out and stored not in out:
                out[stored] = out.pop(sent)
        return out

    def datablock_body(self, block: Dict[str, Any], full_pid: str) -> Dict[str, Any]:
        """An OrigDatablock body for dataset ``full_pid`` (same in v3 and v4)."""
        return dict(block, datasetId=full_pid)

    def attachment_body(self, doc: Dict[str, Any], full_pid: str) -> Dict[str, Any]:
        """An attachment body linked to dataset ``full_pid``."""
        if self.version == 4:
            return to_v4_attachment(doc, full_pid)
        return dict(doc, datasetId=full_pid)

    def patch_body(self, changes: Dict[str, Any], server: Dict[str, Any]) -> Dict[str, Any]:
        """A dataset PATCH body that keeps what the server computed itself.

        v4 resets ``size``/``numberOfFiles`` to 0 when a PATCH leaves them out,
        so their current server values travel along.
        """
        body = dict(changes)
        if self.version == 4:
            for key in V4_PATCH_KEEP:
                if key not in body and isinstance(server.get(key), (int, float)):
                    body[key] = server[key]
        return body

    @staticmethod
    def object_id(obj: Dict[str, Any]) -> Optional[str]:
        """The id of a datablock or attachment as the server reports it."""
        for key in ("aid", "id", "_id"):
            value = obj.get(key)
            if value is not None:
                return str(value)
        return None


def _where(condition: Dict[str, Any]) -> Dict[str, str]:
    return {"filter": json.dumps({"where": condition})}
