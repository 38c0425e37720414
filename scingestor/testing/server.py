"""Run the development server in-process for tests, the demo and benchmarks."""

from __future__ import annotations

import contextlib
import logging
import re
import socket
from typing import Any, Dict, Iterable, Iterator, List, Optional

from ..devserver import DevServer, Faults, RecordedRequest

logger = logging.getLogger(__name__)


#: The API versions the dev server answers.
API_VERSIONS = ("v3", "v4")


class DevServerHandle:
    """Convenience view of a running :class:`DevServer`.

    ``url`` is the root of the handle's ``api_version`` ("v3" by default:
    ``http://127.0.0.1:PORT/api/v3``); ``login_url`` is always the v3 root,
    where ``auth/login`` lives. ``faults`` is the fault-injection object;
    stored documents are read directly.
    """

    def __init__(self, server: DevServer, api_version: str = "v3") -> None:
        server.url_for(api_version)
        self.server = server
        self.api_version = api_version

    @property
    def url(self) -> str:
        """The API root URL of ``api_version``."""
        return self.server.url_for(self.api_version)

    @property
    def login_url(self) -> str:
        """The v3 root (login exists only there): POST ``{login_url}/auth/login``."""
        return self.server.url

    def url_for(self, version: str) -> str:
        """The API root of ``version`` ("v3" or "v4")."""
        return self.server.url_for(version)

    @property
    def datablock_delete_allowed(self) -> bool:
        """False: DELETE of OrigDatablocks and datasets answers 403."""
        return self.server.datablock_delete_allowed

    def set_datablock_delete_allowed(self, allowed: bool) -> None:
        """Let DELETE of OrigDatablocks/datasets through, or answer 403 as a default
        deployment does for accounts outside ``DELETE_GROUPS``."""
        self.server.datablock_delete_allowed = allowed

    @property
    def port(self) -> int:
        """The listening port."""
        return self.server.port

    @property
    def faults(self) -> Faults:
        """Fault injection (``fail_next``, ``drop_next``, ``refuse_connections`` ...)."""
        return self.server.faults

    @property
    def requests(self) -> List[RecordedRequest]:
        """The recorded API requests, oldest first."""
        return self.server.log.items()

    def requests_matching(self, method: Optional[str] = None,
                          path: Optional[str] = None) -> List[RecordedRequest]:
        """Recorded requests with this method and a path matching the regex."""
        return [r for r in self.requests
                if (method is None or r.method == method.upper())
                and (path is None or re.search(path, r.path, re.IGNORECASE))]

    def clear_requests(self) -> None:
        """Forget the recorded requests (numbering restarts at 1)."""
        self.server.log.clear()

    def add_user(self, username: str, password: str, groups: Iterable[str] = (),
                 admin: bool = True) -> None:
        """Create an account; non-admin accounts read only their groups' datasets."""
        self.server.accounts.add_user(username, password, groups, admin)

    def expire_tokens(self) -> None:
        """Invalidate every issued token."""
        self.server.accounts.expire_tokens()

    def set_token_lifetime(self, seconds: float) -> None:
        """Lifetime of tokens issued from now on."""
        self.server.accounts.set_token_lifetime(seconds)

    def datasets(self) -> List[Dict[str, Any]]:
        """Every stored dataset, oldest first."""
        return self.server.store.list("datasets")

    def dataset(self, pid: str) -> Optional[Dict[str, Any]]:
        """The stored dataset ``pid`` or None."""
        return self.server.store.get("datasets", pid)

    def datablocks(self, pid: Optional[str] = None) -> List[Dict[str, Any]]:
        """Stored OrigDatablocks (of dataset ``pid`` if given)."""
        return self.server.store.list("origdatablocks", parent=pid)

    def attachments(self, pid: Optional[str] = None) -> List[Dict[str, Any]]:
        """Stored attachments (of dataset ``pid`` if given)."""
        return self.server.store.list("attachments", parent=pid)

    def proposals(self) -> List[Dict[str, Any]]:
        """Stored proposals."""
        return self.server.store.list("proposals")

    def samples(self) -> List[Dict[str, Any]]:
        """Stored samples."""
        return self.server.store.list("samples")

    def instruments(self) -> List[Dict[str, Any]]:
        """Stored instruments."""
        return self.server.store.list("instruments")

    def add_proposal(self, doc: Dict[str, Any]) -> None:
        """Store a proposal (keyed by its ``proposalId``) without a request."""
        self.server.store.insert("proposals", str(doc["proposalId"]), dict(doc))

    def reset(self) -> None:
        """Clear documents, requests, faults and tokens."""
        self.server.reset()

    def start(self) -> None:
        """(Re)start listening on the same port."""
        self.server.start()

    def stop(self) -> None:
        """Stop listening (documents are kept; :meth:`start` resumes)."""
        self.server.stop()

    def close(self) -> None:
        """Stop and close the database."""
        self.server.close()


def free_port(host: str = "127.0.0.1") -> int:
    """Return a port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def start_dev_server(started: bool = True, api_version: str = "v3",
                     **options: Any) -> DevServerHandle:
    """Create a :class:`DevServer` on 127.0.0.1 and wrap it.

    ``api_version`` ("v3" or "v4") chooses the root ``handle.url`` points at.
    With ``started=False`` a free port is chosen but nothing listens until
    ``handle.start()`` (a server that is "down at first").
    """
    if api_version not in API_VERSIONS:
        raise ValueError(f"api_version must be one of {API_VERSIONS}")
    options.setdefault("host", "127.0.0.1")
    if not started and not options.get("port"):
        options["port"] = free_port(options["host"])
    server = DevServer(**options)
    if started:
        server.start()
    return DevServerHandle(server, api_version)


@contextlib.contextmanager
def running_dev_server(**options: Any) -> Iterator[DevServerHandle]:
    """Context manager: a started server, closed on exit."""
    handle = start_dev_server(**options)
    try:
        yield handle
    finally:
        handle.close()
