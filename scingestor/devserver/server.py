"""The development server: listener lifecycle, shared state, refusal mode."""

from __future__ import annotations

import logging
import socket
import threading
from http.server import ThreadingHTTPServer
from typing import Callable, List, Optional, Set

from .admin import AdminApi
from .api import API_PREFIXES, Api, ApiOptions
from .auth import DEFAULT_TOKEN_LIFETIME, Accounts
from .faults import Faults
from .handler import DevRequestHandler
from .requestlog import RequestLog
from .store import Store

logger = logging.getLogger(__name__)

DEFAULT_USERS = (("ingestor", "12342345"), ("admin", "admin-pass"))


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class DevServer:
    """A SciCat-compatible server on ``host:port`` (port 0 picks a free one).

    It answers ``/api/v3`` and ``/api/v4`` from one store (``docs/devserver.md``).
    ``users_login_mode`` is the answer of ``POST Users/login``: "modern" (empty
    201, SciCat 4.5) or "legacy" (LoopBack ``{id, ttl}``). ``restrict_ingestor``
    gives the ``ingestor`` account only its own group, so that reading datasets
    of other groups answers 403 as on a real deployment.
    ``datablock_delete_allowed=False`` models accounts outside ``DELETE_GROUPS``
    (a default deployment): DELETE of OrigDatablocks and datasets answers 403,
    attachments stay deletable.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, db: str = ":memory:",
                 users_login_mode: str = "modern", token_lifetime: float = DEFAULT_TOKEN_LIFETIME,
                 accept_query_token: bool = False, require_query_token: bool = False,
                 pid_prefix: str = "", restrict_ingestor: bool = False,
                 default_users: bool = True, datablock_delete_allowed: bool = True) -> None:
        self.host = host
        self.port = port
        self.store = Store(db)
        self.accounts = Accounts(token_lifetime)
        self.options = ApiOptions(users_login_mode, accept_query_token, require_query_token,
                                  pid_prefix, datablock_delete_allowed)
        self.api = Api(self.store, self.accounts, self.options)
        self.admin = AdminApi(self)
        self.log = RequestLog()
        self.faults = Faults()
        self.faults.refuse_hook = self._refuse
        self.faults.restore_hook = self._restore
        self._lock = threading.RLock()
        self._httpd: Optional[_HTTPServer] = None
        self._thread: Optional[threading.Thread] = None
        self._timer: Optional[threading.Timer] = None
        self._connections: Set[socket.socket] = set()
        self._after = threading.local()
        self._running = False
        if default_users:
            for username, password in DEFAULT_USERS:
                groups = ("ingestor",) if username == "ingestor" else ("admin",)
                admin = not (restrict_ingestor and username == "ingestor")
                self.accounts.add_user(username, password, groups, admin)

    # -- lifecycle -----------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The v3 API root, e.g. ``http://127.0.0.1:8881/api/v3`` (also the login root)."""
        return self.url_for("v3")

    @property
    def url_v4(self) -> str:
        """The v4 API root, e.g. ``http://127.0.0.1:8881/api/v4``."""
        return self.url_for("v4")

    def url_for(self, version: str) -> str:
        """The API root of ``version`` ("v3" or "v4")."""
        if version not in API_PREFIXES:
            raise ValueError(f"unknown API version {version!r}; use one of "
                             f"{sorted(API_PREFIXES)}")
        return self.base_url + API_PREFIXES[version].rstrip("/")

    @property
    def datablock_delete_allowed(self) -> bool:
        """Whether DELETE of OrigDatablocks and datasets is allowed (else 403)."""
        return self.options.datablock_delete_allowed

    @datablock_delete_allowed.setter
    def datablock_delete_allowed(self, allowed: bool) -> None:
        self.options.datablock_delete_allowed = bool(allowed)

    def start(self) -> DevServer:
        """Bind and serve in a background thread; return self."""
        with self._lock:
            self._running = True
            if self._httpd is None:
                self._open()
        logger.info("dev server listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving (listener and open connections); :meth:`start` may follow."""
        with self._lock:
            self._running = False
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._close()
        self._cut_connections()

    def close(self) -> None:
        """Stop serving and close the database."""
        self.stop()
        self.store.close()

    def _open(self) -> None:
        handler = type("BoundHandler", (DevRequestHandler,), {"devserver": self})
        httpd = _HTTPServer((self.host, self.port), handler)
        self.port = httpd.server_address[1]
        thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                  name=f"devserver-{self.port}", daemon=True)
        self._httpd, self._thread = httpd, thread
        thread.start()

    def _close(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()

    # -- refusal mode --------------------------------------------------------------

    def _refuse(self, seconds: Optional[float]) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._close()
            if seconds is not None:
                self._timer = threading.Timer(float(seconds), self._end_refusal)
                self._timer.daemon = True
                self._timer.start()
        self._cut_connections()

    def _restore(self) -> None:
        with self._lock:
            if self._timer is not None and self._timer is not threading.current_thread():
                self._timer.cancel()
            self._timer = None
            if self._running and self._httpd is None:
                self._open()

    def _end_refusal(self) -> None:
        self.faults.refusing = False
        self._restore()

    def connection_opened(self, conn: socket.socket) -> None:
        """Track an accepted connection."""
        with self._lock:
            self._connections.add(conn)

    def connection_closed(self, conn: socket.socket) -> None:
        """Forget a finished connection."""
        with self._lock:
            self._connections.discard(conn)

    def _cut_connections(self) -> None:
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # -- helpers for the admin API -------------------------------------------------

    def schedule(self, action: Callable[[], None]) -> None:
        """Run ``action`` after the current admin response has been sent."""
        pending: List[Callable[[], None]] = getattr(self._after, "actions", [])
        pending.append(action)
        self._after.actions = pending

    def run_scheduled(self) -> None:
        """Run the actions scheduled by the current thread."""
        pending: List[Callable[[], None]] = getattr(self._after, "actions", [])
        self._after.actions = []
        for action in pending:
            action()

    def reset(self) -> None:
        """Clear documents, the request log, faults and tokens."""
        self.store.clear()
        self.log.clear()
        self.faults.clear()
        self.accounts.expire_tokens()
