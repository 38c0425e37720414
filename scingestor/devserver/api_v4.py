"""The ``/api/v4`` routes of the dev server: datasets, origdatablocks, attachments.

Top-level resources only (no ``datasets/{pid}/...`` children, no login);
behaviour as observed on SciCat 4.5, see ``docs/devserver.md``.
"""

from __future__ import annotations

import logging
from typing import Dict, List, Optional, Tuple
from urllib.parse import parse_qsl

from .catalogue import Catalogue, check_unit_patch
from .documents import (
    PATCH_RESET_FIELDS,
    attachment_view,
    datablock_view,
    dataset_view,
    merge_patch,
    new_dataset,
)
from .routing import (
    FilterError,
    Handler,
    Request,
    Response,
    error,
    not_found,
    parse_where,
)
from .validation import validate_datablock, validate_datablock_patch
from .validation_v4 import (
    MISSING_OWNER_BODY,
    MissingOwner,
    validate_v4_attachment,
    validate_v4_dataset,
    validate_v4_dataset_patch,
)

logger = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
INCLUDES = ("origdatablocks", "attachments")


def _dataset_missing() -> Response:
    # The 4.5 backend names "null" instead of the pid here.
    return not_found("dataset: null not found")


def _where(req: Request) -> Tuple[Optional[Dict], Optional[Response]]:
    try:
        return parse_where(req.query), None
    except FilterError as exc:
        return None, error(400, f"Invalid JSON in filter: {exc}", "Bad Request")


def _includes(raw_query: str) -> List[str]:
    """Every ``include`` value of a raw query string (the parameter may repeat)."""
    return [value for key, value in parse_qsl(raw_query) if key == "include"]


class ApiV4:
    """Answers the v4 routes."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue

    def route(self, method: str, seg: list) -> Optional[Handler]:
        """The handler of ``method`` on the segments, or None."""
        table: Dict[Tuple[str, str, int], Handler] = {
            ("GET", "datasets", 1): self.list_datasets,
            ("POST", "datasets", 1): self.create_dataset,
            ("GET", "datasets", 2): self.get_dataset,
            ("PATCH", "datasets", 2): self.patch_dataset,
            ("DELETE", "datasets", 2): self.delete_dataset,
            ("GET", "origdatablocks", 1): self.list_datablocks,
            ("POST", "origdatablocks", 1): self.create_datablock,
            ("GET", "origdatablocks", 2): self.get_datablock,
            ("PATCH", "origdatablocks", 2): self.patch_datablock,
            ("DELETE", "origdatablocks", 2): self.delete_datablock,
            ("GET", "attachments", 1): self.list_attachments,
            ("POST", "attachments", 1): self.create_attachment,
            ("GET", "attachments", 2): self.get_attachment,
            ("PATCH", "attachments", 2): self.patch_attachment,
            ("DELETE", "attachments", 2): self.delete_attachment,
        }
        return table.get((method, seg[0], len(seg)))

    # -- datasets ------------------------------------------------------------------

    def list_datasets(self, req: Request) -> Response:
        """``GET datasets?filter={"where": ...}`` (arrays match any element)."""
        where, failure = _where(req)
        if where is None:
            return failure  # type: ignore[return-value]
        docs = self.catalogue.datasets(req.account, where)
        return Response.json(200, [dataset_view(doc, "v4") for doc in docs])

    def create_dataset(self, req: Request) -> Response:
        """``POST datasets``: v4 names; without ``owner`` HTTP 500 as on 4.5."""
        try:
            body = validate_v4_dataset(req.body)
        except MissingOwner:
            return Response.json(500, MISSING_OWNER_BODY)
        body["pid"] = self.catalogue.new_pid(body.get("pid"))
        doc = new_dataset(body, req.account, "4")
        conflict = self.catalogue.insert_dataset(doc)
        return conflict or Response.json(201, dataset_view(doc, "v4", with_id=True))

    def get_dataset(self, req: Request) -> Response:
        """``GET datasets/<pid>`` with optional ``include=origdatablocks&include=attachments``."""
        doc, failure = self.catalogue.readable_dataset(req.account, req.seg[1],
                                                       _dataset_missing())
        if doc is None:
            return failure
        view = dataset_view(doc, "v4")
        for name in _includes(req.raw_query):
            if name not in INCLUDES:
                return error(400, f'Provided include field "{name}" is not part of the '
                                  "dataset relations", "Bad Request")
            if name == "origdatablocks":
                view[name] = [datablock_view(block, False) for block in
                              self.catalogue.datablocks(req.account, {}, doc["pid"])]
            else:
                view[name] = [attachment_view(att, "v4", with_id=False) for att in
                              self.catalogue.attachments(
                                  req.account, {"relationships.targetId": doc["pid"]})]
        return Response.json(200, view)

    def patch_dataset(self, req: Request) -> Response:
        """``PATCH datasets/<pid>`` (JSON or merge patch).

        As on SciCat 4.5, ``size``, ``numberOfFiles`` and ``packedSize`` left
        out of the body are reset to 0; a merge patch merges nested objects
        (``scientificMetadata``), a JSON body replaces top-level fields.
        """
        pid = req.seg[1]
        changes = validate_v4_dataset_patch(req.body)
        doc, failure = self.catalogue.readable_dataset(req.account, pid,
                                                       not_found("Dataset not found"))
        if doc is None:
            return failure
        conflict = check_unit_patch(pid, doc.get("scientificMetadata"),
                                    changes.get("scientificMetadata"))
        if conflict is not None:
            return conflict
        merge = req.headers.get("content-type", "").split(";")[0].strip() == MERGE_PATCH
        if merge:
            doc = merge_patch(doc, changes)
        else:
            doc.update(changes)
        for key in PATCH_RESET_FIELDS:
            if key not in changes:
                doc[key] = 0
        self.catalogue.save_dataset(req.account, doc)
        return Response.json(200, dataset_view(doc, "v4", with_id=True))

    def delete_dataset(self, req: Request) -> Response:
        """``DELETE datasets/<pid>``: its OrigDatablocks go too, attachments stay."""
        refused = self.catalogue.delete_forbidden()
        if refused is not None:
            return refused
        doc, failure = self.catalogue.readable_dataset(req.account, req.seg[1],
                                                       _dataset_missing())
        if doc is None:
            return failure
        self.catalogue.delete_dataset(doc["pid"], with_datablocks=True)
        return Response.json(200, dataset_view(doc, "v4", with_id=True))

    # -- origdatablocks ------------------------------------------------------------

    def list_datablocks(self, req: Request) -> Response:
        """``GET origdatablocks?filter={"where": {"datasetId": PID}}``."""
        where, failure = _where(req)
        if where is None:
            return failure  # type: ignore[return-value]
        blocks = self.catalogue.datablocks(req.account, where)
        return Response.json(200, [datablock_view(block, False) for block in blocks])

    def create_datablock(self, req: Request) -> Response:
        """``POST origdatablocks``: the v3 body; groups copied from the dataset."""
        doc, failure = self.catalogue.create_datablock(req.account, validate_datablock(req.body))
        return Response.json(201, datablock_view(doc, True)) if doc is not None else failure

    def _block(self, block_id: str) -> Tuple[Optional[Dict], Response]:
        doc = self.catalogue.datablock(block_id)
        if doc is None:
            return None, not_found(f"OrigDatablock: {block_id} not found")
        return doc, Response(200)

    def get_datablock(self, req: Request) -> Response:
        """``GET origdatablocks/<id>``."""
        doc, failure = self._block(req.seg[1])
        return Response.json(200, datablock_view(doc, False)) if doc is not None else failure

    def patch_datablock(self, req: Request) -> Response:
        """``PATCH origdatablocks/<id>``: e.g. a new ``dataFileList``/``size`` in place."""
        changes = validate_datablock_patch(req.body)
        doc, failure = self._block(req.seg[1])
        if doc is None:
            return failure
        doc = self.catalogue.patch_datablock(req.account, doc, changes)
        return Response.json(200, datablock_view(doc, True))

    def delete_datablock(self, req: Request) -> Response:
        """``DELETE origdatablocks/<id>`` (403 without delete permission)."""
        refused = self.catalogue.delete_forbidden()
        if refused is not None:
            return refused
        doc, failure = self._block(req.seg[1])
        if doc is None:
            return failure
        self.catalogue.delete_datablock(doc)
        return Response.json(200, datablock_view(doc, True))

    # -- attachments ---------------------------------------------------------------

    def list_attachments(self, req: Request) -> Response:
        """``GET attachments?filter={"where": {"relationships.targetId": PID}}``."""
        where, failure = _where(req)
        if where is None:
            return failure  # type: ignore[return-value]
        docs = self.catalogue.attachments(req.account, where)
        return Response.json(200, [attachment_view(doc, "v4", with_id=False) for doc in docs])

    def create_attachment(self, req: Request) -> Response:
        """``POST attachments``: ``aid`` optional; a taken ``aid`` fails with 500 as on 4.5."""
        body = validate_v4_attachment(req.body)
        aid = body.pop("aid", None)
        doc = self.catalogue.create_attachment(req.account, body, aid)
        if doc is None:
            return Response.json(500, "Internal server error")
        return Response.json(201, attachment_view(doc, "v4"))

    def _attachment(self, aid: str) -> Tuple[Optional[Dict], Response]:
        doc = self.catalogue.attachment(aid)
        if doc is None:
            return None, not_found(f"Attachment: {aid} not found")
        return doc, Response(200)

    def get_attachment(self, req: Request) -> Response:
        """``GET attachments/<aid>``."""
        doc, failure = self._attachment(req.seg[1])
        return Response.json(200, attachment_view(doc, "v4")) if doc is not None else failure

    def patch_attachment(self, req: Request) -> Response:
        """``PATCH attachments/<aid>`` (``aid`` itself cannot change)."""
        changes = validate_v4_attachment(req.body, patch=True)
        doc, failure = self._attachment(req.seg[1])
        if doc is None:
            return failure
        if "relationships" in changes:
            changes["relationships"] = [{"relationType": "is attached to", **link}
                                        for link in changes["relationships"]]
        doc.update(changes)
        self.catalogue.save_attachment(req.account, doc)
        return Response.json(200, attachment_view(doc, "v4"))

    def delete_attachment(self, req: Request) -> Response:
        """``DELETE attachments/<aid>`` (needs no ``DELETE_GROUPS`` membership)."""
        doc, failure = self._attachment(req.seg[1])
        if doc is None:
            return failure
        self.catalogue.delete_attachment(doc["_id"])
        return Response.json(200, attachment_view(doc, "v4"))
