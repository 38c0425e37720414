"""Whitelisting validation of v3 request bodies (see ``docs/devserver.md``)."""

from __future__ import annotations

import datetime
import logging
import re
from typing import Any, Callable, Dict, List, Mapping, Tuple

logger = logging.getLogger(__name__)


class ValidationError(Exception):
    """The body is not acceptable; ``messages`` lists every problem."""

    def __init__(self, messages: List[str]) -> None:
        super().__init__("; ".join(messages))
        self.messages = list(messages)


_ISO_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,]\d+)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?$")
_EMAIL_RE = re.compile(r"^[^@\s;]+@[^@\s;]+\.[^@\s;]+$")


def is_iso8601(value: Any) -> bool:
    """Return True for an ISO 8601 date or date-time string with a valid date."""
    if not isinstance(value, str):
        return False
    match = _ISO_RE.match(value.strip())
    if not match:
        return False
    year, month, day, hour, minute, second = match.groups()
    try:
        datetime.datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0),
                          int(second or 0))
    except ValueError:
        return False
    return True


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_object(value: Any) -> bool:
    return isinstance(value, dict)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _is_str_or_str_list(value: Any) -> bool:
    return isinstance(value, str) or _is_str_list(value)


def _is_object_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, dict) for item in value)


def _is_emails(value: Any) -> bool:
    if not isinstance(value, str) or not value.strip():
        return False
    return all(_EMAIL_RE.match(part.strip()) for part in value.split(";") if part.strip())


_Check = Tuple[Callable[[Any], bool], str]
_STRING: _Check = (_is_str, "must be a string")
_NUMBER: _Check = (_is_number, "must be a number conforming to the specified constraints")
_INT: _Check = (_is_int, "must be an integer number")
_BOOL: _Check = (_is_bool, "must be a boolean value")
_OBJECT: _Check = (_is_object, "must be an object")
_DATE: _Check = (is_iso8601, "must be a valid ISO 8601 date string")
_STRINGS: _Check = (_is_str_list, "must be an array of strings")
_STRING_OR_STRINGS: _Check = (_is_str_or_str_list, "must be a string or an array of strings")
_OBJECTS: _Check = (_is_object_list, "must be an array of objects")
_EMAILS: _Check = (_is_emails, "must be an email or a ';'-separated list of emails")
_ANY: _Check = (lambda value: True, "")

#: Fields accepted on every dataset type.
DATASET_COMMON_FIELDS: Dict[str, _Check] = {
    "pid": _STRING, "owner": _STRING, "ownerEmail": _STRING, "orcidOfOwner": _STRING,
    "contactEmail": _EMAILS, "sourceFolder": _STRING, "sourceFolderHost": _STRING,
    "size": _NUMBER, "packedSize": _NUMBER, "numberOfFiles": _NUMBER,
    "numberOfFilesArchived": _NUMBER, "creationTime": _DATE, "type": _STRING,
    "validationStatus": _STRING, "keywords": _STRINGS, "description": _STRING,
    "datasetName": _STRING, "classification": _STRING, "license": _STRING,
    "version": _STRING, "isPublished": _BOOL, "techniques": _OBJECTS, "sharedWith": _STRINGS,
    "relationships": _OBJECTS, "datasetlifecycle": _OBJECT, "scientificMetadata": _OBJECT,
    "comment": _STRING, "dataQualityMetrics": _NUMBER, "ownerGroup": _STRING,
    "accessGroups": _STRINGS, "instrumentGroup": _STRING, "createdAt": _DATE,
    "updatedAt": _DATE, "createdBy": _STRING, "updatedBy": _STRING, "history": _OBJECTS,
    "proposalId": _STRING, "sampleId": _STRING, "instrumentId": _STRING,
    "endTime": _DATE, "dataFormat": _STRING,
}
#: Extra fields of raw datasets.
RAW_FIELDS: Dict[str, _Check] = {
    "principalInvestigator": _STRING, "creationLocation": _STRING,
}
#: Extra fields of derived datasets.
DERIVED_FIELDS: Dict[str, _Check] = {
    "investigator": _STRING, "inputDatasets": _STRING_OR_STRINGS,
    "usedSoftware": _STRING_OR_STRINGS, "jobParameters": _OBJECT, "jobLogData": _STRING,
}
RAW_REQUIRED = ("type", "ownerGroup", "owner", "contactEmail", "sourceFolder", "creationTime",
                "principalInvestigator", "creationLocation")
DERIVED_REQUIRED = ("type", "ownerGroup", "owner", "contactEmail", "sourceFolder",
                    "creationTime", "investigator", "inputDatasets", "usedSoftware")

DATABLOCK_FIELDS: Dict[str, _Check] = {
    "id": _STRING, "datasetId": _STRING, "size": _INT, "chkAlg": _STRING,
    "dataFileList": _OBJECTS, "ownerGroup": _STRING, "accessGroups": _STRINGS,
    "instrumentGroup": _STRING, "isPublished": _BOOL, "createdBy": _STRING,
    "updatedBy": _STRING, "createdAt": _DATE, "updatedAt": _DATE,
}
DATAFILE_FIELDS: Dict[str, _Check] = {
    "path": _STRING, "size": _NUMBER, "time": _DATE, "chk": _STRING, "uid": _STRING,
    "gid": _STRING, "perm": _STRING, "type": _STRING,
}
ATTACHMENT_FIELDS: Dict[str, _Check] = {
    "id": _ANY, "thumbnail": _STRING, "caption": _STRING, "datasetId": _STRING,
    "proposalId": _STRING, "sampleId": _STRING, "ownerGroup": _STRING,
    "accessGroups": _STRINGS, "instrumentGroup": _STRING,
    "createdBy": _STRING, "updatedBy": _STRING, "createdAt": _DATE, "updatedAt": _DATE,
}


def _require_object(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, dict):
        raise ValidationError(["body must be a JSON object"])
    return body


def _check_fields(body: Mapping[str, Any], allowed: Mapping[str, _Check],
                  prefix: str = "") -> List[str]:
    problems = []
    for key, value in body.items():
        check = allowed.get(key)
        if check is None:
            problems.append(f"{prefix}property {key} should not exist")
        elif value is not None and not check[0](value):
            problems.append(f"{prefix}{key} {check[1]}")
    return problems


def _check_required(body: Mapping[str, Any], required: Tuple[str, ...]) -> List[str]:
    problems = []
    for key in required:
        value = body.get(key)
        if value is None or (isinstance(value, (str, list)) and not value):
            problems.append(f"{key} should not be empty")
    return problems


def dataset_fields(kind: str) -> Dict[str, _Check]:
    """Return the accepted fields of a dataset of type ``kind`` (raw or derived)."""
    fields = dict(DATASET_COMMON_FIELDS)
    fields.update(DERIVED_FIELDS if kind == "derived" else RAW_FIELDS)
    return fields


def validate_dataset(body: Any, forced_type: str = "") -> Dict[str, Any]:
    """Validate a dataset creation body and return it.

    ``forced_type`` is set by the typed routes (``RawDatasets``/``DerivedDatasets``).
    """
    doc = dict(_require_object(body))
    kind = doc.get("type") if isinstance(doc.get("type"), str) else ""
    if forced_type:
        if kind and kind != forced_type:
            raise ValidationError([f"type must be {forced_type}"])
        kind = forced_type
        doc["type"] = forced_type
    problems: List[str] = []
    if kind not in ("raw", "derived"):
        if "type" in doc:
            problems.append("type must be one of the following values: raw, derived")
        kind = "raw"
    problems += _check_fields(doc, dataset_fields(kind))
    problems += _check_required(doc, DERIVED_REQUIRED if kind == "derived" else RAW_REQUIRED)
    if problems:
        raise ValidationError(problems)
    return doc


def validate_dataset_patch(body: Any, kind: str) -> Dict[str, Any]:
    """Validate a PATCH body for a stored dataset of type ``kind``."""
    doc = dict(_require_object(body))
    problems = []
    for key in ("pid", "type"):
        if key in doc:
            problems.append(f"property {key} should not exist")
    fields = dataset_fields(kind)
    fields.pop("pid")
    fields.pop("type")
    problems += [msg for msg in _check_fields(doc, fields)
                 if not msg.startswith(("property pid ", "property type "))]
    if problems:
        raise ValidationError(problems)
    return doc


def check_datafiles(files: Any) -> List[str]:
    """Problems of a ``dataFileList``: non-empty; entries need path, size and time."""
    problems: List[str] = []
    if not isinstance(files, list) or not files:
        return ["dataFileList should not be empty"]
    for index, entry in enumerate(files):
        prefix = f"dataFileList.{index}."
        if not isinstance(entry, dict):
            problems.append(f"dataFileList.{index} must be an object")
            continue
        problems += _check_fields(entry, DATAFILE_FIELDS, prefix)
        for key, check in (("path", _STRING), ("size", _NUMBER), ("time", _DATE)):
            if entry.get(key) is None:
                problems.append(f"{prefix}{key} {check[1]}")
    return problems


def validate_datablock(body: Any) -> Dict[str, Any]:
    """Validate an OrigDatablock creation body and return it."""
    doc = dict(_require_object(body))
    problems = _check_fields(doc, DATABLOCK_FIELDS)
    if not isinstance(doc.get("datasetId"), str) or not doc.get("datasetId"):
        problems.append("datasetId should not be empty")
    if "size" not in doc:
        problems.append("size must be an integer number")
    problems += check_datafiles(doc.get("dataFileList"))
    if problems:
        raise ValidationError(sorted(set(problems), key=problems.index))
    return doc


def validate_datablock_patch(body: Any, complete: bool = False) -> Dict[str, Any]:
    """Validate a PATCH body of an OrigDatablock (``datasetId`` is rejected).

    ``complete`` (the v3 ``Datasets/{pid}/OrigDatablocks/{id}`` route) also
    requires ``size`` and ``dataFileList``.
    """
    doc = dict(_require_object(body))
    fields = {key: check for key, check in DATABLOCK_FIELDS.items()
              if key not in ("id", "datasetId", "createdBy", "updatedBy", "createdAt",
                             "updatedAt")}
    problems = _check_fields(doc, fields)
    if complete and not _is_int(doc.get("size")):
        problems.append("size must be an integer number")
    if complete or "dataFileList" in doc:
        problems += check_datafiles(doc.get("dataFileList"))
    if problems:
        raise ValidationError(sorted(set(problems), key=problems.index))
    return doc


def validate_attachment(body: Any) -> Dict[str, Any]:
    """Validate an attachment creation body and return it (client id dropped)."""
    doc = dict(_require_object(body))
    problems = _check_fields(doc, ATTACHMENT_FIELDS)
    problems += _check_required(doc, ("ownerGroup",))
    if not isinstance(doc.get("caption"), str):
        problems.append("caption must be a string")
    if problems:
        raise ValidationError(problems)
    doc.pop("id", None)
    return doc
