"""Publish datasets, OrigDatablocks and attachments to SciCat, idempotently."""

from __future__ import annotations

import copy
import json
import logging
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Tuple

from scingestor.scicat.client import SciCatClient, encode_segment, response_json
from scingestor.scicat.errors import DatasetValidationError, SciCatError

if TYPE_CHECKING:
    from scingestor.config import IngestorConfig

logger = logging.getLogger(__name__)

#: Fields a current backend refuses in a PATCH body, whatever the configuration.
NEVER_PATCHED = ("pid", "type")
#: Upper bound of version candidates tried (guards against a server that finds every pid).
MAX_VERSIONS = 10000


@dataclass(frozen=True)
class DatasetResult:
    """Outcome of :meth:`DatasetPublisher.ingest_dataset`.

    ``pid`` is without the ``dataset_pid_prefix``; ``action`` is one of
    ``created``, ``patched``, ``new_version``, ``unchanged``, ``skipped``.
    """

    pid: str
    action: str

    @property
    def created(self) -> bool:
        """True if a dataset was created on the server by this call."""
        return self.action in ("created", "new_version")


@dataclass(frozen=True)
class SyncResult:
    """What a datablock or attachment synchronisation did (counts)."""

    posted: int = 0
    kept: int = 0
    deleted: int = 0
    skipped: int = 0


def format_proposal_id(pattern: str, proposal_id: str, beamtime_id: str) -> str:
    """Fill ``scicat_proposal_id_pattern`` (lower- and camel-case keywords)."""
    text = str(pattern)
    for key, value in (("proposalid", proposal_id), ("proposalId", proposal_id),
                       ("beamtimeid", beamtime_id), ("beamtimeId", beamtime_id)):
        text = text.replace("{" + key + "}", str(value))
    return text


def differences(server: Any, local: Any, skip: Iterable[str] = (), prefix: str = "") -> List[str]:
    """Return the dotted paths where two documents differ (empty: equal).

    Keys whose dotted path is in ``skip`` are ignored; nested objects are
    compared key by key, everything else by equality. A key only the server
    has with a null value is ignored (servers fill unset fields with null).
    """
    skipped = set(skip)
    if not (isinstance(server, dict) and isinstance(local, dict)):
        return [] if server == local else [prefix or "."]
    found: List[str] = []
    for key in sorted(set(server) | set(local), key=str):
        path = f"{prefix}.{key}" if prefix else str(key)
        if path in skipped:
            continue
        if key not in local:
            if server[key] is not None:
                found.append(path)
        elif key not in server:
            found.append(path)
        elif isinstance(server[key], dict) and isinstance(local[key], dict):
            found.extend(differences(server[key], local[key], skipped, path))
        elif server[key] != local[key]:
            found.append(path)
    return found


def next_version(pid: str) -> str:
    """``bt/scan`` → ``bt/scan/2``; ``bt/scan/2`` → ``bt/scan/3``."""
    parts = pid.split("/")
    if len(parts) > 2 and parts[-1].isdigit():
        parts[-1] = str(int(parts[-1]) + 1)
        return "/".join(parts)
    return pid + "/2"


def _file_signature(block: Dict[str, Any]) -> Tuple:
    """Identity of a datablock: its (path, size) pairs."""
    files = block.get("dataFileList") or []
    return tuple(sorted((str(f.get("path")), f.get("size")) for f in files
                        if isinstance(f, dict)))


def _thumbnail_key(attachment: Dict[str, Any]) -> str:
    """Identity of an attachment: its thumbnail."""
    return json.dumps(attachment.get("thumbnail"), sort_keys=True)


def _object_id(obj: Dict[str, Any]) -> Optional[str]:
    value = obj.get("id", obj.get("_id"))
    return None if value is None else str(value)


class DatasetPublisher:
    """Implements dataset creation/update and child synchronisation (spec 06)."""

    def __init__(self, cfg: IngestorConfig, client: SciCatClient) -> None:
        self._cfg = cfg
        self._client = client
        self._prefix = cfg.dataset_pid_prefix or ""
        self._strategy = cfg.dataset_update_strategy  # validated, lower-case

    # -- paths -------------------------------------------------------------
    def _dataset_path(self, full_pid: str) -> str:
        return f"{self._cfg.scicat_datasets_path}/{encode_segment(full_pid)}"

    def _attachments_path(self, full_pid: str) -> str:
        return str(self._cfg.scicat_attachments_path).replace("{pid}", encode_segment(full_pid))

    # -- datasets ----------------------------------------------------------
    def fetch_dataset(self, full_pid: str) -> Optional[Dict[str, Any]]:
        """Return the server copy of a dataset, or None if it does not exist.

        2xx with a JSON object → the object; 2xx with an empty body or 404 →
        None; 403 raises :class:`SciCatForbiddenError`; others raise.
        """
        response = self._client.get(self._dataset_path(full_pid), accept=(404,))
        if response.status_code == 404:
            return None
        body = response_json(response)
        if body is None or body == {}:
            return None
        if not isinstance(body, dict):
            raise SciCatError("GET", self._client.url(self._dataset_path(full_pid)),
                              response.status_code, "answer is not a JSON object")
        return body

    def ingest_dataset(self, doc: Dict[str, Any], *, beamtime_id: str,
                       proposal_id_expected: Optional[str],
                       measurement: str = "") -> DatasetResult:
        """Create or update one dataset per ``dataset_update_strategy``.

        Raises :class:`DatasetValidationError` before any request when the
        document does not belong to the beamtime, :class:`SciCatError` when
        the server fails.
        """
        pid = self._validate(doc, beamtime_id, proposal_id_expected)
        full = self._prefix + pid
        server = self.fetch_dataset(full)
        if server is None:
            response = self._client.post(self._cfg.scicat_datasets_path, doc,
                                         idempotent=True, accept=(409,))
            if response.status_code != 409:
                logger.info("dataset %s created", full)
                return DatasetResult(pid, "created")
            logger.info("dataset %s already exists (409): comparing", full)
            server = self.fetch_dataset(full)
            if server is None:
                raise SciCatError("POST", self._client.url(self._cfg.scicat_datasets_path),
                                  409, f"dataset {full} reported as duplicate but not found")
        if self._strategy == "no":
            logger.info("dataset %s exists (dataset_update_strategy: no)", full)
            return DatasetResult(pid, "skipped")
        local = copy.deepcopy(dict(doc))
        local["pid"] = full
        keywords = local.get("keywords")
        if (self._cfg.force_measurement_keyword and measurement
                and isinstance(keywords, list) and measurement not in keywords):
            local["keywords"] = keywords + [measurement]
        core, scientific = self._compare(server, local)
        if not core and not scientific:
            logger.info("dataset %s exists unchanged", full)
            return DatasetResult(pid, "unchanged")
        if self._strategy == "patch" or (self._strategy == "mixed" and not core):
            self._patch(full, local, core + scientific)
            return DatasetResult(pid, "patched")
        return self._new_version(pid, local, core + scientific)

    def _validate(self, doc: Dict[str, Any], beamtime_id: str,
                  proposal_id_expected: Optional[str]) -> str:
        pid = doc.get("pid")
        if not isinstance(pid, str) or not pid:
            raise DatasetValidationError("dataset has no 'pid'")
        if not pid.startswith(f"{beamtime_id}/"):
            raise DatasetValidationError(
                f"dataset 'pid' {pid!r} does not start with the beamtime id '{beamtime_id}/'")
        if doc.get("type") == "raw" and proposal_id_expected is not None:
            found = doc.get("proposalId")
            if found != proposal_id_expected:
                raise DatasetValidationError(
                    f"dataset {pid!r}: 'proposalId' {found!r} differs from "
                    f"{proposal_id_expected!r} (scicat_proposal_id_pattern)")
        return pid

    def _compare(self, server: Dict[str, Any], local: Dict[str, Any]) -> Tuple[List, List]:
        """Return (core differences, scientificMetadata differences)."""
        core = differences(server, local, self._cfg.metadata_fields_without_checks)
        key = "scientificMetadata"
        if key in server and key in local:
            scientific = [f"{key}.{p}" for p in differences(server[key], local[key])]
        elif (key in server) != (key in local):
            scientific = [key]
        else:
            scientific = []
        return core, scientific

    def _patch(self, full: str, local: Dict[str, Any], changed: List[str]) -> None:
        dropped = set(self._cfg.metadata_fields_cannot_be_patched) | set(NEVER_PATCHED)
        body = {k: v for k, v in local.items() if k not in dropped}
        self._client.patch(self._dataset_path(full), body, idempotent=True)
        logger.info("dataset %s patched (changed: %s)", full, ", ".join(changed[:10]))

    def _new_version(self, pid: str, local: Dict[str, Any], changed: List[str]) -> DatasetResult:
        candidate = pid
        for _ in range(MAX_VERSIONS):
            candidate = next_version(candidate)
            full = self._prefix + candidate
            body = dict(local, pid=full)
            server = self.fetch_dataset(full)
            if server is None:
                response = self._client.post(self._cfg.scicat_datasets_path, body,
                                             idempotent=True, accept=(409,))
                if response.status_code == 409:
                    logger.info("dataset version %s already exists (409)", full)
                else:
                    logger.info("dataset %s created as new version (changed: %s)", full,
                                ", ".join(changed[:10]))
                return DatasetResult(candidate, "new_version")
            core, scientific = self._compare(server, body)
            if not core and not scientific:
                logger.info("dataset version %s exists unchanged", full)
                return DatasetResult(candidate, "unchanged")
        raise SciCatError("GET", self._client.url(self._dataset_path(self._prefix + pid)),
                          None, f"no free version pid after {MAX_VERSIONS} tries")

    # -- datablocks --------------------------------------------------------
    def sync_datablocks(self, pid: str, blocks: List[Dict[str, Any]], *,
                        replace: bool) -> SyncResult:
        """Make the dataset's OrigDatablocks match ``blocks`` without duplicates.

        Blocks with an empty ``dataFileList`` are skipped. A local block whose
        (path, size) list equals a server block's is not posted again; with
        ``replace`` server blocks matching no local block are deleted.
        """
        full = self._prefix + pid
        local = []
        skipped = 0
        for block in blocks:
            if not block.get("dataFileList"):
                skipped += 1
                continue
            local.append(dict(block, datasetId=full))
        if not local and not replace:
            return SyncResult(skipped=skipped)
        cfg = self._cfg
        listing = self._client.get(f"{self._dataset_path(full)}/{cfg.scicat_datablocks_path}")
        server = [b for b in (response_json(listing) or []) if isinstance(b, dict)]
        missing, kept, stale = _match(local, server, _file_signature)
        deleted = 0
        if replace:
            for block in stale:
                block_id = _object_id(block)
                if block_id is not None:
                    self._client.delete(
                        f"{cfg.scicat_datablocks_path}/{encode_segment(block_id)}")
                    deleted += 1
        for block in missing:
            self._client.post(cfg.scicat_datablocks_path, block)
        result = SyncResult(posted=len(missing), kept=kept, deleted=deleted, skipped=skipped)
        logger.info("datablocks of %s: %d posted, %d kept, %d deleted", full,
                    result.posted, result.kept, result.deleted)
        return result

    # -- attachments -------------------------------------------------------
    def sync_attachments(self, pid: str, attachments: List[Dict[str, Any]], *,
                         replace_all: bool) -> SyncResult:
        """Post attachments not yet on the server (matched by ``thumbnail``).

        With ``replace_all`` (re-ingestion) server attachments matching no
        local one are deleted.
        """
        full = self._prefix + pid
        path = self._attachments_path(full)
        local = [dict(att, datasetId=full) for att in attachments]
        if not local and not replace_all:
            return SyncResult()
        server = [a for a in (response_json(self._client.get(path)) or [])
                  if isinstance(a, dict)]
        missing, kept, stale = _match(local, server, _thumbnail_key)
        deleted = 0
        if replace_all:
            for att in stale:
                att_id = _object_id(att)
                if att_id is not None:
                    self._client.delete(f"{path}/{encode_segment(att_id)}")
                    deleted += 1
        for att in missing:
            self._client.post(path, att)
        result = SyncResult(posted=len(missing), kept=kept, deleted=deleted)
        logger.info("attachments of %s: %d posted, %d kept, %d deleted", full,
                    result.posted, result.kept, result.deleted)
        return result

    # -- proposals ---------------------------------------------------------
    def fetch_proposal_groups(self, proposal_id: str,
                              beamtime_id: str) -> Tuple[Optional[str], Optional[List[str]]]:
        """Return (ownerGroup, accessGroups) of the beamtime's SciCat proposal.

        Not found or any error → WARNING and ``(None, None)``.
        """
        ident = format_proposal_id(self._cfg.scicat_proposal_id_pattern, proposal_id,
                                   beamtime_id)
        path = f"{self._cfg.scicat_proposals_path}/{encode_segment(ident)}"
        try:
            response = self._client.get(path, accept=(404,))
            proposal = None if response.status_code == 404 else response_json(response)
        except SciCatError as exc:
            logger.warning("proposal %s: lookup failed, default groups kept: %s", ident, exc)
            return None, None
        if not isinstance(proposal, dict) or not proposal:
            logger.warning("proposal %s not found in SciCat: default groups kept", ident)
            return None, None
        owner = proposal.get("ownerGroup")
        access = proposal.get("accessGroups")
        owner = owner if isinstance(owner, str) and owner else None
        if isinstance(access, list):
            access = [str(group) for group in access]
        else:
            access = None
        return owner, access


def _match(local: List[Dict[str, Any]], server: List[Dict[str, Any]],
           key: Any) -> Tuple[List[Dict[str, Any]], int, List[Dict[str, Any]]]:
    """Pair local and server objects by ``key``.

    Returns (local objects without a server twin, number kept, server
    objects without a local twin). Each server object pairs at most once.
    """
    wanted = Counter(key(obj) for obj in local)
    stale = []
    kept = Counter()
    for obj in server:
        signature = key(obj)
        if kept[signature] < wanted.get(signature, 0):
            kept[signature] += 1
        else:
            stale.append(obj)
    missing = []
    for obj in local:
        signature = key(obj)
        if kept[signature] > 0:
            kept[signature] -= 1
        else:
            missing.append(obj)
    return missing, len(server) - len(stale), stale
