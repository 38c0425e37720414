"""Stored documents and their v3/v4 views, with the fields the server manages.

A stored dataset carries the v4 arrays (``proposalIds``, ``sampleIds``,
``instrumentIds``, ``principalInvestigators``) and, kept in step with them,
the v3 singular names. The v3 view shows both, the v4 view only the arrays.
What the real backend adds is listed in "Server-managed fields" of
``docs/devserver.md``.
"""

from __future__ import annotations

import datetime
import logging
import re
import secrets
import uuid
from typing import Any, Dict, List, Optional

from .auth import User
from .routing import format_time, now_iso
from .units import add_si

logger = logging.getLogger(__name__)

#: v3 singular name -> v4 array name.
SINGULAR_TO_PLURAL = {
    "principalInvestigator": "principalInvestigators", "proposalId": "proposalIds",
    "sampleId": "sampleIds", "instrumentId": "instrumentIds",
}
#: Fields a v4 PATCH without them resets to 0 (observed on SciCat 4.5).
PATCH_RESET_FIELDS = ("size", "numberOfFiles", "packedSize")
CLASSIFICATION = "IN=medium,AV=low,CO=low"

_TIME_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?"
    r"(Z|[+-]\d{2}(?::?\d{2})?)?)?$")


def object_id() -> str:
    """A Mongo-like 24-hex-digit id."""
    return secrets.token_hex(12)


def normalise_time(value: Any) -> Any:
    """ISO 8601 text -> ``YYYY-MM-DDTHH:MM:SS.mmmZ`` in UTC (other values unchanged)."""
    if not isinstance(value, str):
        return value
    match = _TIME_RE.match(value.strip())
    if not match:
        return value
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    micro -= micro % 1000
    offset = datetime.timedelta(0)
    if zone and zone != "Z":
        digits = zone[1:].replace(":", "")
        offset = datetime.timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
        offset = -offset if zone[0] == "-" else offset
    try:
        stamp = datetime.datetime(int(year), int(month), int(day), int(hour or 0),
                                  int(minute or 0), int(second or 0), micro,
                                  datetime.timezone(offset))
    except ValueError:
        return value
    return format_time(stamp)


def derived_name(source_folder: str) -> str:
    """The name the backend gives a dataset without one: the last two folder names."""
    parts = [part for part in source_folder.split("/") if part]
    return "/".join(parts[-2:])


def _lifecycle(given: Any) -> Dict[str, Any]:
    now = datetime.datetime.now(datetime.timezone.utc)
    tomorrow = (now + datetime.timedelta(days=1)).replace(hour=0, minute=0, second=0,
                                                          microsecond=0)
    cycle: Dict[str, Any] = {
        "_id": object_id(), "archivable": True, "retrievable": False, "publishable": False,
        "dateOfDiskPurging": format_time(now), "archiveRetentionTime": format_time(tomorrow),
        "dateOfPublishing": format_time(tomorrow), "publishedOn": format_time(now),
        "isOnCentralDisk": True, "archiveStatusMessage": "datasetCreated",
        "retrieveStatusMessage": "", "retrieveIntegrityCheck": False,
    }
    if isinstance(given, dict):
        cycle.update(given)
    return cycle


def v3_names_to_arrays(changes: Dict[str, Any], kind: str, creating: bool) -> None:
    """Turn v3 singular fields of a create or PATCH body into the v4 arrays, in place.

    On create a raw dataset gets ``[value]`` (``[None]`` when unset) for every
    singular name; a derived one for proposal and investigator only.
    """
    if "investigator" in changes:
        changes["principalInvestigator"] = changes.pop("investigator")
    for singular, plural in SINGULAR_TO_PLURAL.items():
        if singular in changes:
            changes[plural] = [changes[singular]]
        elif creating and (kind == "raw" or singular in ("proposalId",
                                                           "principalInvestigator")):
            changes[plural] = [None]


#: Fields that may be sent as one string and are stored as a list (both versions).
LIST_FIELDS = ("inputDatasets", "usedSoftware")


def sync_singulars(doc: Dict[str, Any]) -> None:
    """Set each v3 singular name to the first element of its array (absent if empty)."""
    for singular, plural in SINGULAR_TO_PLURAL.items():
        values = doc.get(plural)
        if isinstance(values, list) and values:
            doc[singular] = values[0]
        else:
            doc.pop(singular, None)


def finish_dataset(doc: Dict[str, Any]) -> None:
    """Apply what the server does on every write: times and v3 names.

    ``valueSI``/``unitSI`` are not stored (the handle shows the metadata as
    sent); every answer adds them, see :func:`dataset_view`.
    """
    for key in ("creationTime", "endTime"):
        if key in doc:
            doc[key] = normalise_time(doc[key])
    for key in LIST_FIELDS:  # stored as arrays whatever was sent
        if isinstance(doc.get(key), str):
            doc[key] = [doc[key]]
    sync_singulars(doc)


def new_dataset(body: Dict[str, Any], user: User, version: str) -> Dict[str, Any]:
    """The stored form of a validated dataset body (``pid`` already set)."""
    stamp = now_iso()
    doc: Dict[str, Any] = {
        "_id": body["pid"], "accessGroups": [], "isPublished": False, "size": 0,
        "packedSize": 0, "numberOfFiles": 0, "numberOfFilesArchived": 0, "keywords": [],
        "techniques": [], "sharedWith": [], "relationships": [], "inputDatasets": [],
        "usedSoftware": [], "classification": CLASSIFICATION, "version": version,
        "principalInvestigators": [], "proposalIds": [], "sampleIds": [],
        "instrumentIds": [],
    }
    doc.update(body)
    if not doc.get("datasetName"):
        doc["datasetName"] = derived_name(doc["sourceFolder"]) or doc["pid"]
    doc["datasetlifecycle"] = _lifecycle(body.get("datasetlifecycle"))
    doc.update({"createdBy": user.username, "updatedBy": user.username, "createdAt": stamp,
                "updatedAt": stamp, "__v": 0})
    finish_dataset(doc)
    return doc


def dataset_view(doc: Dict[str, Any], version: str, one: bool = True,
                 with_id: bool = False) -> Dict[str, Any]:
    """The dataset as the server answers it: SI units added; v3 with singular
    names (and ``history`` for one dataset), v4 with the arrays only (``id`` on
    create/PATCH answers)."""
    view = dict(doc)
    if isinstance(doc.get("scientificMetadata"), dict):
        view["scientificMetadata"] = add_si(doc["scientificMetadata"])
    if version == "v3":
        if one:
            view.setdefault("history", [])
        return view
    for singular in SINGULAR_TO_PLURAL:
        view.pop(singular, None)
    view.pop("history", None)
    if with_id:
        view["id"] = doc["pid"]
    return view


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch (``null`` removes a member)."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def unit_conflicts(original: Any, patch: Any, prefix: str = "scientificMetadata") -> List[str]:
    """Paths whose stored entry has value and unit but whose patch leaves one out."""
    found: List[str] = []
    if not isinstance(original, dict) or not isinstance(patch, dict):
        return found
    for key, value in patch.items():
        old = original.get(key)
        if not isinstance(old, dict) or not isinstance(value, dict):
            continue
        if "value" in old and "unit" in old and ("value" in value) != ("unit" in value):
            found.append(f"{prefix}.{key}")
        else:
            found += unit_conflicts(old, value, f"{prefix}.{key}")
    return found


# -- OrigDatablocks ---------------------------------------------------------------------


def datafiles(entries: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """File entries as stored: times normalised, each with an ``_id``."""
    result = []
    for entry in entries:
        item = {key: value for key, value in entry.items() if key not in ("_id", "id")}
        item["time"] = normalise_time(item.get("time"))
        item["_id"] = object_id()
        result.append(item)
    return result


def new_datablock(body: Dict[str, Any], user: User,
                  dataset: Dict[str, Any]) -> Dict[str, Any]:
    """The stored form of a validated OrigDatablock; groups come from the dataset."""
    stamp = now_iso()
    block_id = str(uuid.uuid4())
    doc: Dict[str, Any] = {"_id": block_id, "id": block_id, "isPublished": False}
    doc.update({key: value for key, value in body.items() if key != "id"})
    doc["ownerGroup"] = dataset.get("ownerGroup")
    doc["accessGroups"] = list(dataset.get("accessGroups") or [])
    doc["dataFileList"] = datafiles(body["dataFileList"])
    doc.update({"createdBy": user.username, "updatedBy": user.username, "createdAt": stamp,
                "updatedAt": stamp, "__v": 0})
    return doc


def datablock_view(doc: Dict[str, Any], with_ids: bool) -> Dict[str, Any]:
    """A block as answered: v3 and v4 write answers carry ``id`` (also per file),
    v4 GET answers only ``_id``."""
    view = dict(doc)
    files = [dict(entry) for entry in doc.get("dataFileList", [])]
    if with_ids:
        view["id"] = doc["_id"]
        for entry in files:
            entry["id"] = entry.get("_id")
    else:
        view.pop("id", None)
    view["dataFileList"] = files
    return view


# -- attachments ------------------------------------------------------------------------


def attachment_target(doc: Dict[str, Any]) -> Optional[str]:
    """The pid of the first dataset an attachment is linked to, or None."""
    for link in doc.get("relationships") or []:
        if isinstance(link, dict) and link.get("targetType") == "dataset":
            return link.get("targetId")
    return None


def link_dataset(doc: Dict[str, Any]) -> None:
    """Keep ``datasetId`` of a stored attachment in step with its relationships."""
    target = attachment_target(doc)
    if target is None:
        doc.pop("datasetId", None)
    else:
        doc["datasetId"] = target


def new_attachment(body: Dict[str, Any], user: User, aid: str) -> Dict[str, Any]:
    """The stored form of a validated attachment with id ``aid``."""
    stamp = now_iso()
    doc: Dict[str, Any] = {"accessGroups": [], "isPublished": False}
    doc.update(body)
    links = []
    for link in doc.get("relationships") or []:
        links.append({"relationType": "is attached to", **link})
    doc.update({"_id": aid, "aid": aid, "id": aid, "relationships": links,
                "createdBy": user.username, "updatedBy": user.username, "createdAt": stamp,
                "updatedAt": stamp, "__v": 0})
    link_dataset(doc)
    return doc


def attachment_view(doc: Dict[str, Any], version: str, with_id: bool = True) -> Dict[str, Any]:
    """v3: ``id`` and ``datasetId``; v4: ``aid`` and ``relationships``."""
    view = dict(doc)
    if version == "v3":
        view.pop("aid", None)
        view.pop("relationships", None)
        view["id"] = doc["_id"]
        view["datasetId"] = attachment_target(doc)
        return view
    view.pop("datasetId", None)
    if not with_id:
        view.pop("id", None)
    return view
