"""HTTP-independent pieces shared by the v3 and v4 APIs of the dev server.

Responses, the NestJS-style error bodies, request body and LoopBack
``filter`` parsing, and ``where`` matching. Routes are described in
``docs/devserver.md``.
"""

from __future__ import annotations

import datetime
import json
import logging
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

from .auth import User

logger = logging.getLogger(__name__)

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


@dataclass
class ApiOptions:
    """Behaviour switches of the API (see :class:`~scingestor.devserver.DevServer`)."""

    users_login_mode: str = "modern"
    accept_query_token: bool = False
    require_query_token: bool = False
    pid_prefix: str = ""
    datablock_delete_allowed: bool = True


@dataclass
class Request:
    """One API request as the route handlers see it.

    ``seg`` are the decoded path segments after the version prefix (the
    first one lower-cased); ``user`` is None only on the login routes.
    """

    method: str
    path: str
    seg: List[str]
    body: Any
    query: Dict[str, str]
    headers: Dict[str, str]
    user: Optional[User] = None
    raw_query: str = ""

    @property
    def account(self) -> User:
        """The authenticated user (routes other than login always have one)."""
        assert self.user is not None
        return self.user


#: A route handler.
Handler = Callable[[Request], Response]


def error(status: int, message: Any, name: str = "") -> Response:
    """Build a NestJS-style error response."""
    data: Dict[str, Any] = {"statusCode": status, "message": message}
    if name:
        data["error"] = name
    return Response.json(status, data)


def unauthorized() -> Response:
    """The answer to a request without a valid token."""
    return Response.json(401, {"statusCode": 401, "message": "Unauthorized"})


def forbidden() -> Response:
    """The real backend's 403 (e.g. DELETE by an account outside ``DELETE_GROUPS``)."""
    return Response.json(403, {"message": "Forbidden resource", "error": "Forbidden",
                               "statusCode": 403})


def not_found(message: str) -> Response:
    """A 404 with the real backend's key order."""
    return Response.json(404, {"message": message, "error": "Not Found", "statusCode": 404})


def cannot(method: str, path: str) -> Response:
    """The NestJS answer for a route that does not exist."""
    return not_found(f"Cannot {method} {path}")


def now_iso() -> str:
    """Return the current UTC time as ISO 8601 with milliseconds and ``Z``."""
    return format_time(datetime.datetime.now(datetime.timezone.utc))


def format_time(stamp: datetime.datetime) -> str:
    """Format an aware datetime as the backend does: ``YYYY-MM-DDTHH:MM:SS.mmmZ``."""
    text = stamp.astimezone(datetime.timezone.utc).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def parse_body(body: str) -> Any:
    """Parse a JSON request body; an empty body is an empty object."""
    if not body.strip():
        return {}
    return json.loads(body)


class FilterError(ValueError):
    """The ``filter`` query parameter is not a JSON object."""


def parse_where(query: Dict[str, str]) -> Dict[str, Any]:
    """Return the ``where`` conditions of a LoopBack ``filter`` (raise :class:`FilterError`)."""
    text = query.get("filter")
    if not text:
        return {}
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise FilterError(str(exc)) from exc
    if not isinstance(data, dict):
        raise FilterError("filter must be an object")
    where = data.get("where", {})
    if not isinstance(where, dict):
        raise FilterError("where must be an object")
    return where


def _values_at(doc: Any, path: List[str]) -> List[Any]:
    """Values at a dotted path; arrays on the way are searched element-wise (as Mongo)."""
    if not path:
        return [doc]
    if isinstance(doc, list):
        found: List[Any] = []
        for item in doc:
            found += _values_at(item, path)
        return found
    if not isinstance(doc, dict) or path[0] not in doc:
        return []
    return _values_at(doc[path[0]], path[1:])


def matches(doc: Dict[str, Any], where: Dict[str, Any]) -> bool:
    """Equality match of ``where`` (dotted paths; an array matches any of its elements)."""
    for key, wanted in where.items():
        values = _values_at(doc, key.split("."))
        candidates: List[Any] = []
        for value in values:
            candidates.append(value)
            if isinstance(value, list):
                candidates += value
        if wanted is None and not values:
            continue
        if wanted not in candidates:
            return False
    return True
