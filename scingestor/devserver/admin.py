"""HTTP admin API under ``/__devserver__/`` (no authentication, loopback use).

Routes (JSON bodies):

* ``GET requests`` — the request log; ``DELETE requests`` — clear it.
* ``GET documents`` — every collection; ``GET documents/<collection>``.
* ``POST reset`` — clear documents, requests, faults and tokens.
* ``GET faults``; ``DELETE faults`` (or ``POST faults/clear``) — clear faults.
* ``POST faults/fail`` ``{count, status, body, method, path}`` or ``{numbers: [..]}``.
* ``POST faults/drop`` ``{count, method, path}``.
* ``POST faults/latency`` ``{seconds}``.
* ``POST faults/refuse`` ``{seconds}`` (the admin API is unreachable meanwhile).
* ``POST users`` ``{username, password, groups, admin}``.
* ``POST proposals`` — store a proposal document as is.
* ``POST tokens/expire`` — invalidate every token.
* ``GET permissions``; ``POST permissions`` ``{datablock_delete_allowed: bool}`` — with
  false, DELETE of OrigDatablocks and datasets answers 403 (accounts outside
  ``DELETE_GROUPS``).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from .api import Response
from .store import COLLECTIONS

if TYPE_CHECKING:
    from .server import DevServer

logger = logging.getLogger(__name__)


class AdminApi:
    """Answers admin requests for one :class:`DevServer`."""

    def __init__(self, server: DevServer) -> None:
        self.server = server

    def dispatch(self, method: str, route: str, body: str) -> Response:
        """Answer one admin request; ``route`` is the path after the prefix."""
        try:
            data = json.loads(body) if body.strip() else {}
        except ValueError:
            return Response.json(400, {"message": "body must be JSON"})
        if not isinstance(data, dict):
            return Response.json(400, {"message": "body must be a JSON object"})
        try:
            return self._dispatch(method, route.strip("/"), data)
        except (TypeError, ValueError, KeyError) as exc:
            return Response.json(400, {"message": f"bad admin request: {exc}"})

    def _dispatch(self, method: str, route: str, data: dict) -> Response:
        server = self.server
        faults = server.faults
        if route == "requests" and method == "GET":
            return Response.json(200, [r.to_dict() for r in server.log.items()])
        if route == "requests" and method == "DELETE":
            server.log.clear()
            return _ok()
        if route == "documents" and method == "GET":
            return Response.json(200, server.store.dump())
        if route.startswith("documents/") and method == "GET":
            name = route.split("/", 1)[1].lower()
            if name not in COLLECTIONS:
                return Response.json(404, {"message": f"unknown collection {name}"})
            return Response.json(200, server.store.list(name))
        if route == "reset" and method == "POST":
            server.reset()
            return _ok()
        if route == "permissions" and method == "GET":
            return Response.json(200, _permissions(server))
        if route == "faults" and method == "GET":
            return Response.json(200, faults.describe())
        if (route == "faults" and method == "DELETE") or (
                route == "faults/clear" and method == "POST"):
            faults.clear()
            return _ok()
        if method != "POST":
            return Response.json(404, {"message": f"unknown admin route {method} {route}"})
        return self._post(route, data)

    def _post(self, route: str, data: dict) -> Response:
        server = self.server
        faults = server.faults
        if route == "faults/fail":
            if data.get("numbers"):
                faults.fail_requests(*data["numbers"], status=data.get("status", 500),
                                     body=data.get("body"))
            else:
                faults.fail_next(data.get("count", 1), data.get("status", 500),
                                 data.get("body"), data.get("method"), data.get("path"))
        elif route == "faults/drop":
            faults.drop_next(data.get("count", 1), data.get("method"), data.get("path"))
        elif route == "faults/latency":
            faults.set_latency(data["seconds"])
        elif route == "faults/refuse":
            seconds: Any = data.get("seconds")
            if seconds is None:
                return Response.json(400, {"message": "seconds is required over HTTP"})
            server.schedule(lambda: faults.refuse_connections(float(seconds)))
        elif route == "users":
            server.accounts.add_user(data["username"], data["password"],
                                     data.get("groups", ()), bool(data.get("admin", True)))
        elif route == "proposals":
            server.store.insert("proposals", str(data["proposalId"]), data)
        elif route == "tokens/expire":
            server.accounts.expire_tokens()
        elif route == "permissions":
            allowed = data["datablock_delete_allowed"]
            if not isinstance(allowed, bool):
                raise TypeError("datablock_delete_allowed must be a boolean")
            server.datablock_delete_allowed = allowed
            return Response.json(200, _permissions(server))
        else:
            return Response.json(404, {"message": f"unknown admin route POST {route}"})
        return _ok()


def _permissions(server: DevServer) -> dict:
    return {"datablock_delete_allowed": server.datablock_delete_allowed}


def _ok() -> Response:
    return Response.json(200, {"ok": True})
