"""SciCat v3 REST semantics of the development server (no HTTP glue)."""

from __future__ import annotations

import datetime
import json
import logging
import posixpath
import threading
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import unquote

from .auth import Accounts, User
from .store import DuplicateError, Store
from .validation import (
    ValidationError,
    validate_attachment,
    validate_datablock,
    validate_dataset,
    validate_dataset_patch,
)

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v3/"
LOGIN_MODES = ("legacy", "modern")


@dataclass
class Response:
    """An HTTP answer: status and body text (JSON unless empty)."""

    status: int
    body: str = ""

    @classmethod
    def json(cls, status: int, data: Any) -> Response:
        """Build a JSON response."""
        return cls(status, json.dumps(data))


def error(status: int, message: Any, name: str = "") -> Response:
    """Build a NestJS-style error response."""
    data: Dict[str, Any] = {"statusCode": status, "message": message}
    if name:
        data["error"] = name
    return Response.json(status, data)


def unauthorized() -> Response:
    """The answer to a request without a valid token."""
    return Response.json(401, {"statusCode": 401, "message": "Unauthorized"})


def dataset_not_found(pid: str) -> Response:
    """The real backend's answer for an unknown dataset pid."""
    return Response.json(404, {"message": f"dataset: {pid} not found", "error": "Not Found",
                               "statusCode": 404})


def now_iso() -> str:
    """Return the current UTC time as ISO 8601 with milliseconds."""
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


@dataclass
class ApiOptions:
    """Behaviour switches of the API."""

    users_login_mode: str = "legacy"
    accept_query_token: bool = False
    require_query_token: bool = False
    pid_prefix: str = ""


_Handler = Callable[[User, List[str], Any, Dict[str, str]], Response]


class Api:
    """Route and answer one request against the store and the accounts."""

    def __init__(self, store: Store, accounts: Accounts, options: ApiOptions) -> None:
        if options.users_login_mode not in LOGIN_MODES:
            raise ValueError(f"users_login_mode must be one of {LOGIN_MODES}")
        self.store = store
        self.accounts = accounts
        self.options = options
        self._write_lock = threading.Lock()

    # -- entry point ---------------------------------------------------------------

    def dispatch(self, method: str, path: str, query: Dict[str, str],
                 headers: Dict[str, str], body: str) -> Response:
        """Answer one request; ``path`` is raw (percent-encoded), without query."""
        if not path.startswith(API_PREFIX):
            return _cannot(method, path)
        segments = [unquote(part) for part in path[len(API_PREFIX):].rstrip("/").split("/")]
        segments[0] = segments[0].lower()
        route = self._route(method, segments)
        if route is None:
            return _cannot(method, path)
        is_login = route in (self.login, self.users_login)
        user: Optional[User] = None
        if not is_login:
            if self.options.require_query_token and not query.get("access_token"):
                return Response.json(400, {"Error": "Empty access_token"})
            user = self.accounts.authenticate(self._token(headers, query))
            if user is None:
                return unauthorized()
        try:
            payload = _parse(body) if method in ("POST", "PATCH", "PUT") else None
        except ValueError:
            return error(400, "Unexpected token in JSON body", "Bad Request")
        try:
            if method == "GET":
                return route(user, segments, payload, query)  # type: ignore[arg-type]
            with self._write_lock:
                return route(user, segments, payload, query)  # type: ignore[arg-type]
        except ValidationError as exc:
            return error(400, exc.messages, "Bad Request")

    def _token(self, headers: Dict[str, str], query: Dict[str, str]) -> Optional[str]:
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            return auth[7:].strip()
        if self.options.accept_query_token:
            return query.get("access_token")
        return None

    def _route(self, method: str, seg: List[str]) -> Optional[_Handler]:
        head, size = seg[0], len(seg)
        sub = seg[2].lower() if size > 2 else ""
        table: Dict[Tuple[str, str, int, str], _Handler] = {
            ("POST", "auth", 2, ""): self.login,
            ("POST", "users", 2, ""): self.users_login,
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
            ("GET", "datasets", 3, "attachments"): self.dataset_attachments,
            ("POST", "datasets", 3, "attachments"): self.create_attachment,
            ("DELETE", "datasets", 4, "attachments"): self.delete_attachment,
            ("GET", "origdatablocks", 1, ""): self.list_datablocks,
            ("POST", "origdatablocks", 1, ""): self.create_datablock,
            ("GET", "origdatablocks", 2, ""): self.get_datablock,
            ("DELETE", "origdatablocks", 2, ""): self.delete_datablock,
        }
        if size == 2 and (head, seg[1].lower()) in (("auth", "login"), ("users", "login")):
            return table.get((method, head, 2, ""))
        if head in ("auth", "users"):
            return None
        if head in _SIMPLE_COLLECTIONS:
            if size == 1 and method in ("GET", "POST"):
                return self.list_simple if method == "GET" else self.create_simple
            if size == 2 and method == "GET":
                return self.get_simple
            return None
        return table.get((method, head, size, sub))

    # -- login ---------------------------------------------------------------------

    def login(self, _user: Optional[User], _seg: List[str], body: Any,
              _query: Dict[str, str]) -> Response:
        """``POST auth/login``: 201 with the token, 401 on bad credentials."""
        body = body if isinstance(body, dict) else {}
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

    def users_login(self, _user: Optional[User], _seg: List[str], body: Any,
                    _query: Dict[str, str]) -> Response:
        """Legacy ``POST Users/login``: LoopBack ``{id, ttl}`` or SciCat 4.5 empty 201."""
        body = body if isinstance(body, dict) else {}
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

    def _readable_dataset(self, user: User, pid: str) -> Tuple[Optional[dict], Response]:
        doc = self.store.get("datasets", pid)
        if doc is None:
            return None, dataset_not_found(pid)
        if not user.can_read(doc):
            return None, error(403, "Forbidden resource", "Forbidden")
        return doc, Response(200)

    def list_datasets(self, user: User, seg: List[str], _body: Any,
                      query: Dict[str, str]) -> Response:
        """``GET Datasets`` (optional ``filter={"where": {...}}`` with equality)."""
        docs = [doc for doc in self.store.list("datasets") if user.can_read(doc)]
        if seg[0] != "datasets":
            kind = "raw" if seg[0] == "rawdatasets" else "derived"
            docs = [doc for doc in docs if doc.get("type") == kind]
        where = _where(query)
        if where is None:
            return error(400, "filter must be JSON", "Bad Request")
        docs = [doc for doc in docs if all(doc.get(k) == v for k, v in where.items())]
        return Response.json(200, docs)

    def create_dataset(self, user: User, seg: List[str], body: Any,
                       _query: Dict[str, str]) -> Response:
        """``POST Datasets`` / ``RawDatasets`` / ``DerivedDatasets``."""
        forced = {"rawdatasets": "raw", "deriveddatasets": "derived"}.get(seg[0], "")
        doc = validate_dataset(body, forced)
        prefix = self.options.pid_prefix
        pid = doc.get("pid") or f"{prefix}{uuid.uuid4()}"
        if prefix and not pid.startswith(prefix):
            pid = prefix + pid
        doc["pid"] = pid
        if not doc.get("datasetName"):
            doc["datasetName"] = posixpath.basename(doc["sourceFolder"].rstrip("/")) or pid
        stamp = now_iso()
        doc.setdefault("size", 0)
        doc.setdefault("numberOfFiles", 0)
        doc.update({"createdBy": user.username, "updatedBy": user.username,
                    "createdAt": stamp, "updatedAt": stamp})
        try:
            self.store.insert("datasets", pid, doc)
        except DuplicateError:
            return error(409, f"A dataset with pid {pid} already exists!", "Conflict")
        return Response.json(201, doc)

    def get_dataset(self, user: User, seg: List[str], _body: Any,
                    _query: Dict[str, str]) -> Response:
        """``GET Datasets/<pid>``: 200, 403 (not readable) or 404."""
        doc, failure = self._readable_dataset(user, seg[1])
        return Response.json(200, doc) if doc is not None else failure

    def patch_dataset(self, user: User, seg: List[str], body: Any,
                      _query: Dict[str, str]) -> Response:
        """``PATCH Datasets/<pid>``: top-level fields replaced."""
        doc, failure = self._readable_dataset(user, seg[1])
        if doc is None:
            return failure
        changes = validate_dataset_patch(body, doc.get("type", "raw"))
        doc.update(changes)
        doc.update({"updatedBy": user.username, "updatedAt": now_iso()})
        self.store.replace("datasets", seg[1], doc)
        return Response.json(200, doc)

    def delete_dataset(self, user: User, seg: List[str], _body: Any,
                       _query: Dict[str, str]) -> Response:
        """``DELETE Datasets/<pid>`` with its datablocks and attachments."""
        doc, failure = self._readable_dataset(user, seg[1])
        if doc is None:
            return failure
        for name, key in (("origdatablocks", "id"), ("attachments", "id")):
            for child in self.store.list(name, parent=seg[1]):
                self.store.delete(name, child[key])
        self.store.delete("datasets", seg[1])
        return Response.json(200, doc)

    # -- datablocks ----------------------------------------------------------------

    def _update_dataset_size(self, pid: str) -> None:
        doc = self.store.get("datasets", pid)
        if doc is None:
            return
        blocks = self.store.list("origdatablocks", parent=pid)
        doc["size"] = sum(block.get("size", 0) for block in blocks)
        doc["numberOfFiles"] = sum(len(block.get("dataFileList", [])) for block in blocks)
        self.store.replace("datasets", pid, doc)

    def dataset_datablocks(self, user: User, seg: List[str], _body: Any,
                           _query: Dict[str, str]) -> Response:
        """``GET Datasets/<pid>/OrigDatablocks``."""
        doc, failure = self._readable_dataset(user, seg[1])
        if doc is None:
            return failure
        return Response.json(200, self.store.list("origdatablocks", parent=seg[1]))

    def list_datablocks(self, user: User, _seg: List[str], _body: Any,
                        query: Dict[str, str]) -> Response:
        """``GET OrigDatablocks`` (optional equality filter)."""
        where = _where(query)
        if where is None:
            return error(400, "filter must be JSON", "Bad Request")
        docs = [doc for doc in self.store.list("origdatablocks")
                if user.can_read(doc) and all(doc.get(k) == v for k, v in where.items())]
        return Response.json(200, docs)

    def create_datablock(self, user: User, _seg: List[str], body: Any,
                         _query: Dict[str, str]) -> Response:
        """``POST OrigDatablocks``: no uniqueness, updates the dataset size."""
        doc = validate_datablock(body)
        pid = doc["datasetId"]
        if self.store.get("datasets", pid) is None:
            return error(404, f"Dataset: {pid} not found for attaching an origdatablock",
                         "Not Found")
        stamp = now_iso()
        doc.update({"id": str(uuid.uuid4()), "createdBy": user.username,
                    "updatedBy": user.username, "createdAt": stamp, "updatedAt": stamp})
        self.store.insert("origdatablocks", doc["id"], doc, parent=pid)
        self._update_dataset_size(pid)
        return Response.json(201, doc)

    def get_datablock(self, user: User, seg: List[str], _body: Any,
                      _query: Dict[str, str]) -> Response:
        """``GET OrigDatablocks/<id>``."""
        doc = self.store.get("origdatablocks", seg[1])
        if doc is None:
            return error(404, f"OrigDatablock: {seg[1]} not found", "Not Found")
        return Response.json(200, doc)

    def delete_datablock(self, user: User, seg: List[str], _body: Any,
                         _query: Dict[str, str]) -> Response:
        """``DELETE OrigDatablocks/<id>``."""
        doc = self.store.get("origdatablocks", seg[1])
        if doc is None:
            return error(404, f"OrigDatablock: {seg[1]} not found", "Not Found")
        self.store.delete("origdatablocks", seg[1])
        self._update_dataset_size(doc.get("datasetId", ""))
        return Response.json(200, doc)

    # -- attachments ---------------------------------------------------------------

    def dataset_attachments(self, user: User, seg: List[str], _body: Any,
                            _query: Dict[str, str]) -> Response:
        """``GET Datasets/<pid>/Attachments``."""
        doc, failure = self._readable_dataset(user, seg[1])
        if doc is None:
            return failure
        return Response.json(200, self.store.list("attachments", parent=seg[1]))

    def create_attachment(self, user: User, seg: List[str], body: Any,
                          _query: Dict[str, str]) -> Response:
        """``POST Datasets/<pid>/Attachments``: the client's id is ignored."""
        doc = validate_attachment(body)
        pid = seg[1]
        if self.store.get("datasets", pid) is None:
            return dataset_not_found(pid)
        stamp = now_iso()
        doc.update({"id": str(uuid.uuid4()), "datasetId": pid, "createdBy": user.username,
                    "updatedBy": user.username, "createdAt": stamp, "updatedAt": stamp})
        self.store.insert("attachments", doc["id"], doc, parent=pid)
        return Response.json(201, doc)

    def delete_attachment(self, user: User, seg: List[str], _body: Any,
                          _query: Dict[str, str]) -> Response:
        """``DELETE Datasets/<pid>/Attachments/<aid>``."""
        doc = self.store.get("attachments", seg[3])
        if doc is None or doc.get("datasetId") != seg[1]:
            return error(404, f"Attachment: {seg[3]} not found", "Not Found")
        self.store.delete("attachments", seg[3])
        return Response.json(200, doc)

    # -- proposals, samples, instruments -------------------------------------------

    def list_simple(self, user: User, seg: List[str], _body: Any,
                    query: Dict[str, str]) -> Response:
        """``GET Proposals`` / ``Samples`` / ``Instruments``."""
        where = _where(query)
        if where is None:
            return error(400, "filter must be JSON", "Bad Request")
        docs = [doc for doc in self.store.list(seg[0])
                if all(doc.get(k) == v for k, v in where.items())]
        return Response.json(200, docs)

    def create_simple(self, user: User, seg: List[str], body: Any,
                      _query: Dict[str, str]) -> Response:
        """``POST Proposals`` / ``Samples`` / ``Instruments``."""
        key = _SIMPLE_COLLECTIONS[seg[0]]
        if not isinstance(body, dict):
            raise ValidationError(["body must be a JSON object"])
        doc = dict(body)
        if seg[0] == "proposals":
            if not isinstance(doc.get("proposalId"), str) or not doc["proposalId"]:
                raise ValidationError(["proposalId should not be empty"])
        elif not doc.get(key):
            doc[key] = str(uuid.uuid4())
        if not isinstance(doc[key], str):
            raise ValidationError([f"{key} must be a string"])
        stamp = now_iso()
        doc.update({"createdBy": user.username, "createdAt": stamp, "updatedAt": stamp})
        try:
            self.store.insert(seg[0], doc[key], doc)
        except DuplicateError:
            return error(409, f"{key} {doc[key]} already exists", "Conflict")
        return Response.json(201, doc)

    def get_simple(self, user: User, seg: List[str], _body: Any,
                   _query: Dict[str, str]) -> Response:
        """``GET Proposals/<id>`` (404 ``proposal: <id> not found``) and alike."""
        doc = self.store.get(seg[0], seg[1])
        if doc is None:
            name = seg[0][:-1]
            return Response.json(404, {"message": f"{name}: {seg[1]} not found",
                                       "error": "Not Found", "statusCode": 404})
        return Response.json(200, doc)


_SIMPLE_COLLECTIONS = {"proposals": "proposalId", "samples": "sampleId", "instruments": "pid"}


def _cannot(method: str, path: str) -> Response:
    return Response.json(404, {"message": f"Cannot {method} {path}", "error": "Not Found",
                               "statusCode": 404})


def _parse(body: str) -> Any:
    """Parse a JSON request body; an empty body is an empty object."""
    if not body.strip():
        return {}
    return json.loads(body)


def _where(query: Dict[str, str]) -> Optional[Dict[str, Any]]:
    """Return the equality conditions of a LoopBack-style ``filter`` (None if invalid)."""
    text = query.get("filter")
    if not text:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    where = data.get("where", {})
    return where if isinstance(where, dict) else None
