"""The ``/api/v3`` routes of the dev server (login, datasets, blocks, attachments, ...).

Routes and behaviour: ``docs/devserver.md``.
"""

from __future__ import annotations

import datetime
import logging
import uuid
from typing import Dict, Optional, Tuple

from .auth import Accounts
from .catalogue import Catalogue
from .documents import (
    SINGULAR_TO_PLURAL,
    attachment_view,
    datablock_view,
    dataset_view,
    new_dataset,
    v3_names_to_arrays,
)
from .routing import (
    ApiOptions,
    FilterError,
    Handler,
    Request,
    Response,
    error,
    not_found,
    now_iso,
    parse_where,
    unauthorized,
)
from .store import DuplicateError, Store
from .validation import (
    ValidationError,
    validate_attachment,
    validate_datablock,
    validate_datablock_patch,
    validate_dataset,
    validate_dataset_patch,
)

logger = logging.getLogger(__name__)

_SIMPLE_COLLECTIONS = {"proposals": "proposalId", "samples": "sampleId", "instruments": "pid"}


def dataset_not_found(pid: str) -> Response:
    """The real backend's answer for an unknown dataset pid."""
    return not_found(f"dataset: {pid} not found")


def _bad_filter() -> Response:
    return error(400, "filter must be JSON", "Bad Request")


class ApiV3:
    """Answers the v3 routes."""

    def __init__(self, store: Store, accounts: Accounts, options: ApiOptions,
                 catalogue: Catalogue) -> None:
        self.store = store
        self.accounts = accounts
        self.options = options
        self.catalogue = catalogue
        self.login_routes = (self.login, self.users_login)

    def route(self, method: str, seg: list) -> Optional[Handler]:
        """The handler of ``method`` on the segments, or None."""
        head, size = seg[0], len(seg)
        sub = seg[2].lower() if size > 2 else ""
        if size == 2 and (head, seg[1].lower()) in (("auth", "login"), ("users", "login")):
            return (self.login if head == "auth" else self.users_login) \
                if method == "POST" else None
        if head in ("auth", "users"):
            return None
        if head in _SIMPLE_COLLECTIONS:
            if size == 1 and method in ("GET", "POST"):
                return self.list_simple if method == "GET" else self.create_simple
            return self.get_simple if size == 2 and method == "GET" else None
        table: Dict[Tuple[str, str, int, str], Handler] = {
            ("GET", "datasets", 1, ""): self.list_datasets,
            ("POST", "datasets", 1, ""): self.create_dataset,
            ("GET", "rawdatasets", 1, ""): self.list_datasets,
            ("POST", "rawdatasets", 1, ""): self.create_dataset,
            ("GET", "deriveddatasets", 1, ""): self.list_datasets,
            ("POST", "deriveddatasets", 1, ""): self.create_dataset,
            ("GET", "datasets", 2, ""): self.get_dataset,
            ("PATCH", "datasets", 2, ""): self.patch_dataset,
            ("DELETE", "datasets", 2, ""): self.delete_dataset,
            ("GET", "datasets", 3, "origdatablocks"): self.dataset_datablocks,
            ("PATCH", "datasets", 4, "origdatablocks"): self.patch_dataset_datablock,
            ("GET", "datasets", 3, "attachments"): self.dataset_attachments,
            ("POST", "datasets", 3, "attachments"): self.create_attachment,
            ("DELETE", "datasets", 4, "attachments"): self.delete_attachment,
            ("GET", "origdatablocks", 1, ""): self.list_datablocks,
            ("POST", "origdatablocks", 1, ""): self.create_datablock,
            ("GET", "origdatablocks", 2, ""): self.get_datablock,
            ("PATCH", "origdatablocks", 2, ""): self.patch_datablock,
            ("DELETE", "origdatablocks", 2, ""): self.delete_datablock,
        }
        return table.get((method, head, size, sub))

    # -- login ---------------------------------------------------------------------

    def login(self, req: Request) -> Response:
        """``POST auth/login``: 201 with the token, 401 on bad credentials."""
        body = req.body if isinstance(req.body, dict) else {}
        token = self.accounts.login(body.get("username"), body.get("password"))
        if token is None:
            return unauthorized()
        user = self.accounts.user(token.username)
        lifetime = int(token.expires - token.created)
        created = datetime.datetime.fromtimestamp(token.created, datetime.timezone.utc)
        return Response.json(201, {
            "access_token": token.value, "id": token.value, "expires_in": lifetime,
            "ttl": lifetime, "created": created.isoformat(), "userId": user.user_id if user else "",
            "user": {"id": user.user_id if user else "", "username": token.username,
                     "email": f"{token.username}@localhost"},
        })

    def users_login(self, req: Request) -> Response:
        """``POST Users/login``: SciCat 4.5 empty 201 ("modern") or LoopBack ``{id, ttl}``."""
        body = req.body if isinstance(req.body, dict) else {}
        token = self.accounts.login(body.get("username"), body.get("password"))
        if token is None:
            if self.options.users_login_mode == "modern":
                return unauthorized()
            return Response.json(401, {"error": {"statusCode": 401, "name": "Error",
                                                 "message": "login failed",
                                                 "code": "LOGIN_FAILED"}})
        if self.options.users_login_mode == "modern":
            return Response(201, "")
        user = self.accounts.user(token.username)
        created = datetime.datetime.fromtimestamp(token.created, datetime.timezone.utc)
        return Response.json(200, {"id": token.value, "ttl": int(token.expires - token.created),
                                   "created": created.isoformat(),
                                   "userId": user.user_id if user else ""})

    # -- datasets ------------------------------------------------------------------

    def list_datasets(self, req: Request) -> Response:
        """``GET Datasets`` (optional ``filter={"where": {...}}``, equality)."""
        try:
            where = parse_where(req.query)
        except FilterError:
            return _bad_filter()
        docs = self.catalogue.datasets(req.account, where)
        if req.seg[0] != "datasets":
            kind = "raw" if req.seg[0] == "rawdatasets" else "derived"
            docs = [doc for doc in docs if doc.get("type") == kind]
        return Response.json(200, [dataset_view(doc, "v3", one=False) for doc in docs])

    def create_dataset(self, req: Request) -> Response:
        """``POST Datasets`` / ``RawDatasets`` / ``DerivedDatasets``."""
        forced = {"rawdatasets": "raw", "deriveddatasets": "derived"}.get(req.seg[0], "")
        body = validate_dataset(req.body, forced)
        body["pid"] = self.catalogue.new_pid(body.get("pid"))
        v3_names_to_arrays(body, body["type"], creating=True)
        doc = new_dataset(body, req.account, "3")
        conflict = self.catalogue.insert_dataset(doc)
        if conflict is not None:
            return conflict
        view = dataset_view(doc, "v3", one=False)
        for key in SINGULAR_TO_PLURAL:
            if view.get(key, "") is None:
                del view[key]  # the create answer leaves unset v3 names out
        return Response.json(201, view)

    def get_dataset(self, req: Request) -> Response:
        """``GET Datasets/<pid>``: 200, 403 (not readable) or 404."""
        pid = req.seg[1]
        doc, failure = self.catalogue.readable_dataset(req.account, pid,
                                                       dataset_not_found(pid))
        return Response.json(200, dataset_view(doc, "v3")) if doc is not None else failure

    def patch_dataset(self, req: Request) -> Response:
        """``PATCH Datasets/<pid>``: top-level fields replaced (v3 names)."""
        pid = req.seg[1]
        doc, failure = self.catalogue.readable_dataset(req.account, pid,
                                                       dataset_not_found(pid))
        if doc is None:
            return failure
        changes = validate_dataset_patch(req.body, doc.get("type", "raw"))
        v3_names_to_arrays(changes, doc.get("type", "raw"), creating=False)
        doc.update(changes)
        self.catalogue.save_dataset(req.account, doc)
        return Response.json(200, dataset_view(doc, "v3", one=False))

    def delete_dataset(self, req: Request) -> Response:
        """``DELETE Datasets/<pid>`` (its blocks and attachments stay, as on 4.5)."""
        refused = self.catalogue.delete_forbidden()
        if refused is not None:
            return refused
        doc = self.store.get("datasets", req.seg[1])
        if doc is None:
            return Response.json(404, {"message": "Not Found", "statusCode": 404})
        self.catalogue.delete_dataset(req.seg[1], with_datablocks=False)
        return Response.json(200, dataset_view(doc, "v3", one=False))

    # -- datablocks ----------------------------------------------------------------

    def dataset_datablocks(self, req: Request) -> Response:
        """``GET Datasets/<pid>/OrigDatablocks``."""
        pid = req.seg[1]
        doc, failure = self.catalogue.readable_dataset(req.account, pid,
                                                       dataset_not_found(pid))
        if doc is None:
            return failure
        blocks = self.catalogue.datablocks(req.account, {}, pid)
        return Response.json(200, [datablock_view(block, True) for block in blocks])

    def list_datablocks(self, req: Request) -> Response:
        """``GET OrigDatablocks`` (optional equality filter)."""
        try:
            where = parse_where(req.query)
        except FilterError:
            return _bad_filter()
        blocks = self.catalogue.datablocks(req.account, where)
        return Response.json(200, [datablock_view(block, True) for block in blocks])

    def create_datablock(self, req: Request) -> Response:
        """``POST OrigDatablocks``: no uniqueness, updates the dataset size."""
        doc, failure = self.catalogue.create_datablock(req.account, validate_datablock(req.body))
        return Response.json(201, datablock_view(doc, True)) if doc is not None else failure

    def get_datablock(self, req: Request) -> Response:
        """``GET OrigDatablocks/<id>`` (an unknown id answers 403 as on 4.5)."""
        doc = self.catalogue.datablock(req.seg[1])
        if doc is None:
            return error(403, "Unauthorized access", "Forbidden")
        return Response.json(200, datablock_view(doc, True))

    def patch_datablock(self, req: Request) -> Response:
        """``PATCH OrigDatablocks/<id>``: replace fields (e.g. ``dataFileList``) in place."""
        changes = validate_datablock_patch(req.body)
        doc = self.catalogue.datablock(req.seg[1])
        if doc is None:
            return not_found(f"OrigDatablock: {req.seg[1]} not found")
        doc = self.catalogue.patch_datablock(req.account, doc, changes)
        return Response.json(200, datablock_view(doc, True))

    def patch_dataset_datablock(self, req: Request) -> Response:
        """``PATCH Datasets/<pid>/OrigDatablocks/<id>`` (``size`` and files required)."""
        changes = validate_datablock_patch(req.body, complete=True)
        doc = self.catalogue.datablock(req.seg[3])
        if doc is None:
            return error(403, "Unauthorized access", "Forbidden")
        doc = self.catalogue.patch_datablock(req.account, doc, changes)
        return Response.json(200, datablock_view(doc, True))

    def delete_datablock(self, req: Request) -> Response:
        """``DELETE OrigDatablocks/<id>`` (403 without delete permission)."""
        refused = self.catalogue.delete_forbidden()
        if refused is not None:
            return refused
        doc = self.catalogue.datablock(req.seg[1])
        if doc is None:
            return not_found(f"OrigDatablock: {req.seg[1]} not found")
        self.catalogue.delete_datablock(doc)
        return Response.json(200, datablock_view(doc, True))

    # -- attachments ---------------------------------------------------------------

    def dataset_attachments(self, req: Request) -> Response:
        """``GET Datasets/<pid>/Attachments`` (also those posted through v4)."""
        pid = req.seg[1]
        doc, failure = self.catalogue.readable_dataset(req.account, pid,
                                                       dataset_not_found(pid))
        if doc is None:
            return failure
        docs = self.catalogue.attachments(req.account, {"relationships.targetId": pid})
        return Response.json(200, [attachment_view(att, "v3") for att in docs])

    def create_attachment(self, req: Request) -> Response:
        """``POST Datasets/<pid>/Attachments``: client id ignored, dataset's ownerGroup."""
        body = validate_attachment(req.body)
        pid = req.seg[1]
        dataset = self.store.get("datasets", pid)
        if dataset is None:
            return dataset_not_found(pid)
        for key in ("datasetId", "proposalId", "sampleId"):
            body.pop(key, None)
        body["ownerGroup"] = dataset.get("ownerGroup")
        body["relationships"] = [{"targetId": pid, "targetType": "dataset"}]
        doc = self.catalogue.create_attachment(req.account, body)
        assert doc is not None
        return Response.json(201, attachment_view(doc, "v3"))

    def delete_attachment(self, req: Request) -> Response:
        """``DELETE Datasets/<pid>/Attachments/<aid>``."""
        doc = self.catalogue.attachment(req.seg[3])
        if doc is None or req.seg[1] not in [link.get("targetId")
                                             for link in doc.get("relationships", [])]:
            return not_found(f"Attachment: {req.seg[3]} not found")
        self.catalogue.delete_attachment(req.seg[3])
        return Response.json(200, attachment_view(doc, "v3"))

    # -- proposals, samples, instruments -------------------------------------------

    def list_simple(self, req: Request) -> Response:
        """``GET Proposals`` / ``Samples`` / ``Instruments``."""
        try:
            where = parse_where(req.query)
        except FilterError:
            return _bad_filter()
        docs = [doc for doc in self.store.list(req.seg[0])
                if all(doc.get(k) == v for k, v in where.items())]
        return Response.json(200, docs)

    def create_simple(self, req: Request) -> Response:
        """``POST Proposals`` / ``Samples`` / ``Instruments``."""
        key = _SIMPLE_COLLECTIONS[req.seg[0]]
        if not isinstance(req.body, dict):
            raise ValidationError(["body must be a JSON object"])
        doc = dict(req.body)
        if req.seg[0] == "proposals":
            if not isinstance(doc.get("proposalId"), str) or not doc["proposalId"]:
                raise ValidationError(["proposalId should not be empty"])
        elif not doc.get(key):
            doc[key] = str(uuid.uuid4())
        if not isinstance(doc[key], str):
            raise ValidationError([f"{key} must be a string"])
        stamp = now_iso()
        doc.update({"createdBy": req.account.username, "createdAt": stamp, "updatedAt": stamp})
        try:
            self.store.insert(req.seg[0], doc[key], doc)
        except DuplicateError:
            return error(409, f"{key} {doc[key]} already exists", "Conflict")
        return Response.json(201, doc)

    def get_simple(self, req: Request) -> Response:
        """``GET Proposals/<id>`` (404 ``proposal: <id> not found``) and alike."""
        doc = self.store.get(req.seg[0], req.seg[1])
        if doc is None:
            return not_found(f"{req.seg[0][:-1]}: {req.seg[1]} not found")
        return Response.json(200, doc)
