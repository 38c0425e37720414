"""Publish datasets, OrigDatablocks and attachments to SciCat, idempotently.

Datasets are compared with the server copy before anything is sent (see
:mod:`scingestor.scicat.compare`); datablocks and thumbnails are matched with
the server's and replaced **in place** (PATCH), so a replacement is never
posted while the old one is still there (README "SciCat access").
"""

from __future__ import annotations

import copy
import logging
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from scingestor.scicat.api import ApiDialect
from scingestor.scicat.client import SciCatClient, response_json
from scingestor.scicat.compare import compare_dataset, differences, file_signature, thumbnail_key
from scingestor.scicat.errors import InvalidDocumentError, RejectedError, SciCatError
from scingestor.scicat.urls import encode_segment

if TYPE_CHECKING:
    from scingestor.config import IngestorConfig

logger = logging.getLogger(__name__)

__all__ = ["DatasetPublisher", "DatasetResult", "SyncResult", "differences",
           "format_proposal_id", "next_version"]

#: Fields a current backend refuses in a PATCH body, whatever the configuration.
NEVER_PATCHED = ("pid", "type")
#: Fields of a datablock or attachment that are not sent when it is updated in place.
NOT_UPDATED = ("id", "_id", "aid", "datasetId", "relationships")
#: Statuses meaning "this server cannot update that object in place".
NO_UPDATE_ROUTE = (404, 405)
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
    fresh: bool = False  # created by this very request: it has no children yet

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
    updated: int = 0


def format_proposal_id(pattern: str, proposal_id: str, beamtime_id: str) -> str:
    """Fill ``scicat_proposal_id_pattern`` (lower- and camel-case keywords)."""
    text = str(pattern)
    for key, value in (("proposalid", proposal_id), ("proposalId", proposal_id),
                       ("beamtimeid", beamtime_id), ("beamtimeId", beamtime_id)):
        text = text.replace("{" + key + "}", str(value))
    return text


def next_version(pid: str) -> str:
    """``bt/scan`` → ``bt/scan/2``; ``bt/scan/2`` → ``bt/scan/3``."""
    parts = pid.split("/")
    if len(parts) > 2 and parts[-1].isdigit():
        parts[-1] = str(int(parts[-1]) + 1)
        return "/".join(parts)
    return pid + "/2"


class DatasetPublisher:
    """Dataset creation/update and child synchronisation over one :class:`ApiDialect`."""

    def __init__(self, cfg: IngestorConfig, client: SciCatClient) -> None:
        self._cfg = cfg
        self._client = client
        self._api = ApiDialect(cfg)
        self._prefix = cfg.dataset_pid_prefix or ""
        self._strategy = cfg.dataset_update_strategy  # validated, lower-case

    @property
    def api(self) -> ApiDialect:
        """The API dialect (v3 or v4) in use."""
        return self._api

    # -- datasets ----------------------------------------------------------
    def fetch_dataset(self, full_pid: str) -> Optional[Dict[str, Any]]:
        """Return the server copy of a dataset, or None if it does not exist.

        2xx with a JSON object → the object; 2xx with an empty body or 404 →
        None; 403 raises :class:`SciCatForbiddenError`; others raise.
        """
        path = self._api.dataset(full_pid)
        response = self._client.get(path, accept=(404,))
        if response.status_code == 404:
            return None
        body = response_json(response)
        if body is None or body == {}:
            return None
        if not isinstance(body, dict):
            raise SciCatError("GET", self._client.url(path), response.status_code,
                              "answer is not a JSON object")
        return body

    def ingest_dataset(self, doc: Dict[str, Any], *, beamtime_id: str,
                       proposal_id_expected: Optional[str],
                       measurement: str = "", fresh: bool = False) -> DatasetResult:
        """Create or update one dataset per ``dataset_update_strategy``.

        ``fresh``: this scan was certainly never sent (see
        :mod:`scingestor.journal`), so it is posted without an existence check
        (a 409 still leads to the comparison). Raises
        :class:`InvalidDocumentError` before any request when the document
        does not belong to the beamtime, :class:`SciCatError` when the server
        fails.
        """
        pid = self._validate(doc, beamtime_id, proposal_id_expected)
        full = self._prefix + pid
        local = self._api.dataset_body(doc)
        server = None if fresh else self.fetch_dataset(full)
        if server is None:
            response = self._client.post(self._api.datasets, local,
                                         idempotent=True, accept=(409,))
            if response.status_code != 409:
                logger.info("dataset %s created", full)
                # a 201 means this request made it (a repetition of ours would get 409)
                return DatasetResult(pid, "created", fresh=True)
            logger.info("dataset %s already exists (409): comparing", full)
            server = self.fetch_dataset(full)
            if server is None:
                raise SciCatError("POST", self._client.url(self._api.datasets),
                                  409, f"dataset {full} reported as duplicate but not found")
        if self._strategy == "no":
            logger.info("dataset %s exists (dataset_update_strategy: no)", full)
            return DatasetResult(pid, "skipped")
        local = copy.deepcopy(local)
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
            self._patch(full, local, server, core + scientific)
            return DatasetResult(pid, "patched")
        return self._new_version(pid, local, core + scientific)

    def _validate(self, doc: Dict[str, Any], beamtime_id: str,
                  proposal_id_expected: Optional[str]) -> str:
        pid = doc.get("pid")
        if not isinstance(pid, str) or not pid:
            raise InvalidDocumentError("dataset has no 'pid'")
        if not pid.startswith(f"{beamtime_id}/"):
            raise InvalidDocumentError(
                f"dataset 'pid' {pid!r} does not start with the beamtime id '{beamtime_id}/'")
        if doc.get("type") == "raw" and proposal_id_expected is not None:
            found = doc.get("proposalId", _first(doc.get("proposalIds")))
            if found != proposal_id_expected:
                raise InvalidDocumentError(
                    f"dataset {pid!r}: 'proposalId' {found!r} differs from "
                    f"{proposal_id_expected!r} (scicat_proposal_id_pattern)")
        return pid

    def _compare(self, server: Dict[str, Any], local: Dict[str, Any]) -> Tuple[List, List]:
        """Return (core differences, scientificMetadata differences)."""
        return compare_dataset(server, self._api.comparable_dataset(local),
                               self._cfg.metadata_fields_without_checks)

    def _patch(self, full: str, local: Dict[str, Any], server: Dict[str, Any],
               changed: List[str]) -> None:
        dropped = set(self._cfg.metadata_fields_cannot_be_patched) | set(NEVER_PATCHED)
        body = self._api.patch_body({k: v for k, v in local.items() if k not in dropped},
                                    server)
        self._client.patch(self._api.dataset(full), body)
        logger.info("dataset %s patched (changed: %s)", full, ", ".join(changed[:10]))

    def _new_version(self, pid: str, local: Dict[str, Any], changed: List[str]) -> DatasetResult:
        candidate = pid
        for _ in range(MAX_VERSIONS):
            candidate = next_version(candidate)
            full = self._prefix + candidate
            body = dict(local, pid=full)
            server = self.fetch_dataset(full)
            if server is None:
                response = self._client.post(self._api.datasets, body,
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
        raise SciCatError("GET", self._client.url(self._api.dataset(self._prefix + pid)),
                          None, f"no free version pid after {MAX_VERSIONS} tries")

    # -- datablocks --------------------------------------------------------
    def sync_datablocks(self, pid: str, blocks: List[Dict[str, Any]], *,
                        replace: bool, fresh: bool = False) -> SyncResult:
        """Make the dataset's OrigDatablocks match ``blocks`` without ever duplicating one.

        Blocks with an empty ``dataFileList`` are skipped. A local block whose
        (path, size) list equals a server block's is kept; a server block
        matching no local block is rewritten in place with a local block that
        has no twin; with ``replace`` surplus server blocks are deleted. New
        blocks are posted only when no stale block is left to rewrite, so a
        refused DELETE (:class:`DeleteForbiddenError`) never leaves two blocks.
        """
        full = self._prefix + pid
        local = [self._api.datablock_body(b, full) for b in blocks if b.get("dataFileList")]
        skipped = len(blocks) - len(local)
        if not local and not replace:
            return SyncResult(skipped=skipped)
        if fresh:  # the dataset was created just now: it has no blocks
            server: List[Dict[str, Any]] = []
        else:
            path, params = self._api.datablock_listing(full)
            server = _objects(self._client.get(path, params=params))
        result = self._sync(local, server, file_signature, replace=replace, rewrite=True,
                            update=self._update_datablock, delete=self._delete_datablock,
                            post=lambda block: self._client.post(self._api.datablocks, block))
        result = SyncResult(result.posted, result.kept, result.deleted, skipped, result.updated)
        logger.info("datablocks of %s: %d posted, %d updated, %d kept, %d deleted", full,
                    result.posted, result.updated, result.kept, result.deleted)
        return result

    def _update_datablock(self, old: Dict[str, Any], new: Dict[str, Any]) -> bool:
        block_id = self._api.object_id(old)
        if block_id is None:
            return False
        body = {k: v for k, v in new.items() if k not in NOT_UPDATED}
        response = self._client.patch(self._api.datablock(block_id), body,
                                      accept=NO_UPDATE_ROUTE)
        return response.status_code not in NO_UPDATE_ROUTE

    def _delete_datablock(self, old: Dict[str, Any]) -> None:
        block_id = self._api.object_id(old)
        if block_id is not None:
            self._client.delete(self._api.datablock(block_id))

    # -- attachments -------------------------------------------------------
    def sync_attachments(self, pid: str, attachments: List[Dict[str, Any]], *,
                         replace_all: bool, fresh: bool = False) -> SyncResult:
        """Make the dataset's attachments match ``attachments`` (matched by ``thumbnail``).

        Without ``replace_all`` missing ones are posted and the others left alone
        (they may have been added by people). With it (re-ingestion) stale ones
        are rewritten in place, like datablocks, and surplus ones deleted.
        """
        full = self._prefix + pid
        local = [self._api.attachment_body(att, full) for att in attachments]
        if not local and not replace_all:
            return SyncResult()
        server: List[Dict[str, Any]] = []
        if not fresh:  # else the dataset was created just now: it has no attachments
            path, params = self._api.attachment_listing(full)
            server = _objects(self._client.get(path, params=params))
        collection = self._api.attachment_collection(full)

        def update(old: Dict[str, Any], new: Dict[str, Any]) -> bool:
            att_id = self._api.object_id(old)
            method = self._api.attachment_update_method
            if att_id is None or method is None:
                return False
            body = {k: v for k, v in new.items() if k not in NOT_UPDATED}
            response = self._client.request(method, self._api.attachment(full, att_id), body,
                                            idempotent=True, accept=NO_UPDATE_ROUTE)
            return response.status_code not in NO_UPDATE_ROUTE

        def delete(old: Dict[str, Any]) -> None:
            att_id = self._api.object_id(old)
            if att_id is not None:
                self._client.delete(self._api.attachment(full, att_id))

        result = self._sync(local, server, thumbnail_key, replace=replace_all,
                            rewrite=replace_all, update=update,
                            delete=delete, post=lambda att: self._client.post(collection, att))
        logger.info("attachments of %s: %d posted, %d updated, %d kept, %d deleted", full,
                    result.posted, result.updated, result.kept, result.deleted)
        return result

    @staticmethod
    def _sync(local: List[Dict[str, Any]], server: List[Dict[str, Any]], key: Callable,
              *, replace: bool, rewrite: bool, update: Callable[[Dict, Dict], bool],
              delete: Callable[[Dict], None], post: Callable[[Dict], Any]) -> SyncResult:
        """The never-duplicate order: update in place, then delete surplus, then post.

        With ``rewrite`` a stale server object is rewritten with a missing local
        one (PATCH: safe to repeat). Where the server has no update route
        the stale object is deleted first and the new one posted only after
        that worked. With ``replace`` surplus stale objects are deleted.
        """
        missing, kept, stale = _match(local, server, key)
        updated = 0
        replaced: List[Tuple[Dict[str, Any], Dict[str, Any]]] = []
        pairs = list(zip(stale, missing)) if rewrite else []
        for old, new in pairs:
            if update(old, new):
                updated += 1
            else:
                replaced.append((old, new))
        to_delete = [old for old, _ in replaced] + (stale[len(pairs):] if replace else [])
        for old in to_delete:
            delete(old)  # a refusal raises here: nothing is posted beside the old object
        to_post = [new for _, new in replaced] + missing[len(pairs):]
        for new in to_post:
            post(new)
        return SyncResult(posted=len(to_post), kept=kept, deleted=len(to_delete),
                          updated=updated)

    # -- proposals ---------------------------------------------------------
    def fetch_proposal_groups(self, proposal_id: str,
                              beamtime_id: str) -> Tuple[Optional[str], Optional[List[str]]]:
        """Return (ownerGroup, accessGroups) of the beamtime's SciCat proposal.

        Not found or any error → WARNING and ``(None, None)``. Proposals live
        under the v3 root also when ``scicat_url`` is a v4 one.
        """
        ident = format_proposal_id(self._cfg.scicat_proposal_id_pattern, proposal_id,
                                   beamtime_id)
        path = self._client.v3_url(f"{self._cfg.scicat_proposals_path}/{encode_segment(ident)}")
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


def _first(values: Any) -> Any:
    return values[0] if isinstance(values, list) and values else None


def _objects(response: Any) -> List[Dict[str, Any]]:
    """The JSON objects of a listing answer."""
    body = response_json(response)
    if not isinstance(body, list):
        raise RejectedError("GET", response.url.split("?", 1)[0], response.status_code,
                            "listing answer is not a JSON array")
    return [item for item in body if isinstance(item, dict)]


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
