"""Whitelisting validation of v4 request bodies (see ``docs/devserver.md``).

One dataset schema for raw and derived datasets: the v3 singular names
(``proposalId``, ``sampleId``, ``instrumentId``, ``principalInvestigator``,
``investigator``) are unknown properties; their v4 forms are arrays.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List

from .validation import (
    _BOOL,
    _OBJECT,
    _STRING,
    _STRING_OR_STRINGS,
    _STRINGS,
    DATASET_COMMON_FIELDS,
    ValidationError,
    _Check,
    _check_fields,
    _is_emails,
    _require_object,
    is_iso8601,
)

logger = logging.getLogger(__name__)

V4_DATASET_FIELDS: Dict[str, _Check] = {
    key: check for key, check in DATASET_COMMON_FIELDS.items()
    if key not in ("proposalId", "sampleId", "instrumentId")
}
V4_DATASET_FIELDS.update({
    "principalInvestigators": _STRINGS, "proposalIds": _STRINGS, "sampleIds": _STRINGS,
    "instrumentIds": _STRINGS, "creationLocation": _STRING, "inputDatasets": _STRING_OR_STRINGS,
    "usedSoftware": _STRING_OR_STRINGS, "jobParameters": _OBJECT, "jobLogData": _STRING,
    "runNumber": _STRING,
})
TARGET_TYPES = ("dataset", "proposal", "sample", "published_data")
V4_ATTACHMENT_FIELDS: Dict[str, _Check] = {
    "aid": _STRING, "thumbnail": _STRING, "caption": _STRING, "ownerGroup": _STRING,
    "accessGroups": _STRINGS, "instrumentGroup": _STRING, "isPublished": _BOOL,
    "relationships": (lambda value: isinstance(value, list), "must be an array"),
}

#: The answer of the real backend to a v4 dataset without ``owner``.
MISSING_OWNER_BODY = {"message": "Something went wrong. Please try again later.",
                      "statusCode": 500}


class MissingOwner(Exception):
    """A v4 dataset without ``owner``: the real backend fails with HTTP 500."""


def _required(doc: Dict[str, Any]) -> List[str]:
    problems: List[str] = []
    if not isinstance(doc.get("type"), str):
        problems.append("type must be a string")
    elif doc["type"] not in ("raw", "derived"):
        problems.append("type must be one of the following values: raw, derived")
    if not isinstance(doc.get("ownerGroup"), str):
        problems.append("ownerGroup must be a string")
    if not _is_emails(doc.get("contactEmail")):
        problems.append("Expected an email or a list of semicolon separated emails, "
                        f"got {doc.get('contactEmail', 'undefined')}")
    folder = doc.get("sourceFolder")
    if not folder:
        problems.append("sourceFolder should not be empty")
    if not isinstance(folder, str):
        problems.append("sourceFolder must be a string")
    if not is_iso8601(doc.get("creationTime")):
        problems.append("creationTime must be a valid ISO 8601 date string")
    if not isinstance(doc.get("datasetName"), str):
        problems.append("datasetName must be a string")
    return problems


def validate_v4_dataset(body: Any) -> Dict[str, Any]:
    """Validate a v4 dataset creation body; raise :class:`MissingOwner` without owner."""
    doc = dict(_require_object(body))
    problems = _check_fields(doc, V4_DATASET_FIELDS)
    problems += [problem for problem in _required(doc) if problem not in problems]
    if problems:
        raise ValidationError(problems)
    if not isinstance(doc.get("owner"), str) or not doc["owner"]:
        raise MissingOwner()
    return doc


def validate_v4_dataset_patch(body: Any) -> Dict[str, Any]:
    """Validate a v4 dataset PATCH (``pid`` and ``type`` are rejected)."""
    doc = dict(_require_object(body))
    fields = {key: check for key, check in V4_DATASET_FIELDS.items()
              if key not in ("pid", "type")}
    problems = _check_fields(doc, fields)
    if problems:
        raise ValidationError(problems)
    return doc


def _check_relationships(links: Any) -> List[str]:
    problems: List[str] = []
    if not isinstance(links, list):
        return problems
    for index, link in enumerate(links):
        prefix = f"relationships.{index}."
        if not isinstance(link, dict):
            problems.append(f"relationships.{index} must be an object")
            continue
        for key in link:
            if key not in ("targetId", "targetType", "relationType"):
                problems.append(f"{prefix}property {key} should not exist")
        if not isinstance(link.get("targetId"), str):
            problems.append(f"{prefix}targetId must be a string")
        if link.get("targetType") not in TARGET_TYPES:
            problems.append(f"{prefix}targetType must be one of the following values: "
                            + ", ".join(TARGET_TYPES))
        if "relationType" in link and not isinstance(link["relationType"], str):
            problems.append(f"{prefix}relationType must be a string")
    return problems


def validate_v4_attachment(body: Any, patch: bool = False) -> Dict[str, Any]:
    """Validate a v4 attachment body (create, or PATCH: all optional, no ``aid``)."""
    doc = dict(_require_object(body))
    fields = dict(V4_ATTACHMENT_FIELDS)
    if patch:
        fields.pop("aid")
    problems = _check_fields(doc, fields)
    if not patch:
        for key, check in (("ownerGroup", _STRING), ("caption", _STRING),
                           ("isPublished", _BOOL)):
            message = f"{key} {check[1]}"
            if doc.get(key) is None and message not in problems:
                problems.append(message)
    problems += _check_relationships(doc.get("relationships"))
    if problems:
        raise ValidationError(problems)
    return doc
