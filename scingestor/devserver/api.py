"""Entry point of the dev server's SciCat API: version prefix, tokens, dispatch.

``/api/v3/...`` is answered by :mod:`.api_v3`, ``/api/v4/...`` by
:mod:`.api_v4`; both work on the same store. See ``docs/devserver.md``.
"""

from __future__ import annotations

import logging
import threading
from typing import Dict, Optional
from urllib.parse import unquote

from .api_v3 import ApiV3, dataset_not_found
from .api_v4 import ApiV4
from .auth import Accounts, User
from .catalogue import Catalogue
from .routing import (
    LOGIN_MODES,
    ApiOptions,
    Request,
    Response,
    cannot,
    error,
    forbidden,
    now_iso,
    parse_body,
    unauthorized,
)
from .store import Store
from .validation import ValidationError

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v3/"
API_PREFIXES = {"v3": "/api/v3/", "v4": "/api/v4/"}

__all__ = ["API_PREFIX", "API_PREFIXES", "LOGIN_MODES", "Api", "ApiOptions", "Response",
           "dataset_not_found", "error", "now_iso", "unauthorized"]


class Api:
    """Route and answer one request against the store and the accounts."""

    def __init__(self, store: Store, accounts: Accounts, options: ApiOptions) -> None:
        if options.users_login_mode not in LOGIN_MODES:
            raise ValueError(f"users_login_mode must be one of {LOGIN_MODES}")
        self.store = store
        self.accounts = accounts
        self.options = options
        self.catalogue = Catalogue(store, options)
        self.v3 = ApiV3(store, accounts, options, self.catalogue)
        self.v4 = ApiV4(self.catalogue)
        self._write_lock = threading.Lock()

    def dispatch(self, method: str, path: str, query: Dict[str, str],
                 headers: Dict[str, str], body: str, raw_query: str = "") -> Response:
        """Answer one request; ``path`` is raw (percent-encoded), without query.

        Without a valid token v3 answers 401 and v4 403 (as SciCat 4.5 does).
        """
        version = next((name for name, prefix in API_PREFIXES.items()
                        if path.startswith(prefix)), None)
        if version is None:
            return cannot(method, path)
        rest = path[len(API_PREFIXES[version]):].rstrip("/")
        seg = [unquote(part) for part in rest.split("/")]
        seg[0] = seg[0].lower()
        route = (self.v3 if version == "v3" else self.v4).route(method, seg)
        if route is None:
            return cannot(method, path)
        user: Optional[User] = None
        if route not in self.v3.login_routes:
            if self.options.require_query_token and not query.get("access_token"):
                return Response.json(400, {"Error": "Empty access_token"})
            user = self.accounts.authenticate(self._token(headers, query))
            if user is None:
                return unauthorized() if version == "v3" else forbidden()
        try:
            payload = parse_body(body) if method in ("POST", "PATCH", "PUT") else None
        except ValueError:
            return error(400, "Unexpected token in JSON body", "Bad Request")
        req = Request(method, path, seg, payload, query, headers, user, raw_query)
        try:
            if method == "GET":
                return route(req)
            with self._write_lock:
                return route(req)
        except ValidationError as exc:
            return error(400, exc.messages, "Bad Request")

    def _token(self, headers: Dict[str, str], query: Dict[str, str]) -> Optional[str]:
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            return auth[7:].strip()
        if self.options.accept_query_token:
            return query.get("access_token")
        return None
