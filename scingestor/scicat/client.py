"""HTTP client for the SciCat REST API: login, token cache, retries, errors."""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Collection, Dict, Optional, Tuple

import requests
from requests.adapters import DEFAULT_POOLSIZE, HTTPAdapter
from urllib3.exceptions import NewConnectionError

from scingestor.credentials import CredentialError
from scingestor.logsetup import register_secret, unregister_secret
from scingestor.scicat.errors import (
    DeleteForbiddenError,
    RejectedError,
    SciCatAuthError,
    SciCatConnectionError,
    SciCatError,
    SciCatForbiddenError,
    ServerError,
)
from scingestor.scicat.urls import api_version, strip_query, v3_root
from scingestor.secret import Secret

if TYPE_CHECKING:
    from scingestor.config import IngestorConfig
    from scingestor.credentials import CredentialSource

logger = logging.getLogger(__name__)

#: Login endpoints of current (NestJS) and legacy (LoopBack) backends.
AUTH_LOGIN_PATH = "auth/login"
LEGACY_LOGIN_PATH = "Users/login"

#: Statuses worth repeating for every retryable request (gateway/overload).
GATEWAY_STATUSES = frozenset({502, 503, 504})
#: One request is repeated after these pauses at most (README "SciCat access");
#: a longer outage is the service's business (it probes, see ``probe``).
REQUEST_RETRY_DELAYS = (0.25, 0.5, 1.0)
#: Seconds a probe waits for any answer.
PROBE_TIMEOUT = 2.0
#: Methods that are idempotent by definition.
SAFE_METHODS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})
#: Seconds subtracted from a token's lifetime before it is renewed.
TOKEN_EXPIRY_MARGIN = 60.0
#: Longest server text quoted in an error message.
MAX_MESSAGE = 500

_QUERY_TOKEN = re.compile(r"(access_token=)[^&\s\"']*", re.IGNORECASE)


class _RedactQueryTokens(logging.Filter):
    """Mask ``access_token=...`` in urllib3's request log lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if "access_token=" in text.lower():
            record.msg = _QUERY_TOKEN.sub(r"\1***", text)
            record.args = ()
        return True


_REDACTOR = _RedactQueryTokens()


def _install_redaction() -> None:
    """Mask query tokens in urllib3's debug lines (only needed with ``token_in_query``)."""
    urllib3_logger = logging.getLogger("urllib3.connectionpool")
    if _REDACTOR not in urllib3_logger.filters:
        urllib3_logger.addFilter(_REDACTOR)


def server_message(response: requests.Response) -> str:
    """Extract the server's explanation from an error answer.

    The JSON ``message`` (a list is joined with ``"; "``), else ``error``
    or ``Error``, else the (shortened) body text, else the HTTP reason.
    """
    text = response.text or ""
    try:
        body = json.loads(text) if text.strip() else None
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("message", "error", "Error"):
            value = body.get(key)
            if isinstance(value, list):
                value = "; ".join(str(item) for item in value)
            if value:
                return str(value)[:MAX_MESSAGE]
    if text.strip():
        return text.strip()[:MAX_MESSAGE]
    return response.reason or ""


def response_json(response: requests.Response) -> Any:
    """Return the decoded JSON body, or None for an empty body.

    Raises :class:`SciCatError` when the body is not JSON.
    """
    text = response.text or ""
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError:
        raise SciCatError(response.request.method or "", strip_query(response.url),
                          response.status_code,
                          f"answer is not JSON: {text.strip()[:100]!r}") from None


class SciCatClient:
    """One SciCat server: a ``requests.Session``, a cached token, retries.

    Safe for concurrent use (the pipeline's sending threads): the token is read
    and renewed under a lock, a refused token is renewed once however many
    threads were refused, the session's connection pool holds one connection per
    sending thread, and ``reachable``/``last_error`` describe the request that
    finished last.

    ``credentials`` is the credential source (re-read before each login);
    ``token`` a ready token (e.g. from ``--token-file``); ``stop_event``
    interrupts retry sleeps; ``clock`` (monotonic seconds) decides token expiry.
    """

    def __init__(self, cfg: IngestorConfig, credentials: Optional[CredentialSource] = None,
                 token: Optional[Secret] = None,
                 stop_event: Optional[threading.Event] = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._cfg = cfg
        self._credentials = credentials
        self._stop = stop_event if stop_event is not None else threading.Event()
        self._clock = clock
        self._session = requests.Session()
        # up to max_scans_in_flight threads share this session: one kept connection each
        size = max(DEFAULT_POOLSIZE, int(getattr(cfg, "max_scans_in_flight", 1) or 1))
        for prefix in ("http://", "https://"):
            self._session.mount(prefix, HTTPAdapter(pool_connections=DEFAULT_POOLSIZE,
                                                    pool_maxsize=size))
        self._login_lock = threading.Lock()
        self._token: Optional[Secret] = token if token else None
        self._token_expires: Optional[float] = None
        self._base = str(cfg.scicat_url).split("?", 1)[0].rstrip("/") + "/"
        self.api_version = api_version(self._base)
        #: Root of login, proposals and the other v3-only models.
        self.v3_base = v3_root(self._base) + "/"
        login = str(cfg.scicat_users_login_path).strip("/")
        if self.api_version == 4 and not cfg.is_explicit("scicat_users_login_path"):
            login = AUTH_LOGIN_PATH  # there is no v4 login and no legacy one beside v4
        self._login_path = login
        self._reachable = True
        self._last_error = ""
        if cfg.token_in_query:
            _install_redaction()

    # -- state -----------------------------------------------------------
    @property
    def reachable(self) -> bool:
        """False if the last request got no answer from the server."""
        return self._reachable

    @property
    def last_error(self) -> str:
        """Text of the last failed request ("" after a success)."""
        return self._last_error

    @property
    def login_path(self) -> str:
        """The login path in use (after a possible fallback)."""
        return self._login_path

    def url(self, path: str) -> str:
        """Return the full URL of an API path (or of an absolute URL as it is)."""
        if path.startswith(("http://", "https://")):
            return path
        return self._base + path.lstrip("/")

    def v3_url(self, path: str) -> str:
        """The URL of ``path`` below the v3 root (login, proposals, samples …)."""
        return self.v3_base + path.lstrip("/")

    def close(self) -> None:
        """Close the HTTP session."""
        self._session.close()

    # -- token -----------------------------------------------------------
    def token(self) -> Secret:
        """Return a valid token, logging in when there is none or it expired."""
        with self._login_lock:
            if self._token is not None and self._token_valid():
                return self._token
            return self._login_locked()

    def login(self) -> Secret:
        """Obtain a new token (from the credential file, or by a login request)."""
        with self._login_lock:
            return self._login_locked()

    def _renew(self, refused: Secret) -> Secret:
        """A new token after SciCat refused ``refused`` (another thread may have renewed it)."""
        with self._login_lock:
            if self._token is not None and self._token is not refused and self._token_valid():
                return self._token
            self._token_expires = 0.0  # refused: not valid any more
            return self._login_locked()

    def _token_valid(self) -> bool:
        if not self._token:
            return False
        return self._token_expires is None or self._clock() < self._token_expires

    def _login_locked(self) -> Secret:
        source = self._credentials
        if source is None:
            if self._token:
                return self._token
            raise SciCatAuthError("POST", self.v3_url(self._login_path), None,
                                  "no credentials configured (ingestor_credential_file)")
        try:
            creds = source.load()
        except CredentialError as exc:
            raise SciCatAuthError("POST", self.v3_url(self._login_path), None,
                                  str(exc)) from None
        if creds.token:
            self._set_token(creds.token, None)
            return creds.token
        password = creds.password.reveal() if creds.password else ""
        body = json.dumps({"username": creds.username, "password": password})
        token, lifetime = self._login_at(self._login_path, body)
        if token is None:
            other = self._fallback_login_path()
            token, lifetime = self._login_at(other, body)
            if token is None:
                raise SciCatAuthError("POST", self.v3_url(self._login_path), None,
                                      f"no token from {self._login_path!r} nor {other!r}")
            logger.warning("SciCat login at %r gave no token but %r works: set "
                           "'scicat_users_login_path: %s' in the configuration",
                           self._login_path, other, other)
            self._login_path = other
        self._set_token(token, lifetime)
        logger.info("logged in to SciCat at %s", self.v3_url(self._login_path))
        return token

    def _fallback_login_path(self) -> str:
        if self._login_path.lower() == AUTH_LOGIN_PATH.lower():
            return LEGACY_LOGIN_PATH
        return AUTH_LOGIN_PATH

    def _login_at(self, path: str, body: str) -> Tuple[Optional[Secret], Optional[float]]:
        """POST a login; return (token, lifetime) or (None, None) for "no token here"."""
        response = self._send("POST", self.v3_url(path), body, idempotent=True, token=None)
        url = strip_query(response.url)
        if response.status_code == 404:
            return None, None
        if response.status_code >= 500:
            error: SciCatError = ServerError("POST", url, response.status_code,
                                             server_message(response))
            self._last_error = str(error)
            raise error
        if not 200 <= response.status_code < 300:
            error = SciCatAuthError("POST", url, response.status_code, server_message(response))
            self._last_error = str(error)
            raise error
        try:
            answer = response_json(response)
        except SciCatError:
            answer = None
        if not isinstance(answer, dict):
            return None, None
        value = answer.get("access_token") or answer.get("id")
        if not isinstance(value, str) or not value:
            return None, None
        register_secret(value)
        lifetime = answer.get("expires_in", answer.get("ttl"))
        if isinstance(lifetime, bool) or not isinstance(lifetime, (int, float)):
            lifetime = None
        return Secret(value), lifetime

    def _set_token(self, token: Secret, lifetime: Optional[float]) -> None:
        old = self._token
        if old and token and old.reveal() != token.reveal():
            unregister_secret(old.reveal())  # only live secrets are masked (and searched)
        self._token = token
        if lifetime is None or lifetime <= 0:
            self._token_expires = None
        else:
            margin = min(TOKEN_EXPIRY_MARGIN, lifetime / 10.0)
            self._token_expires = self._clock() + lifetime - margin

    # -- requests --------------------------------------------------------
    def get(self, path: str, *, params: Optional[Dict[str, str]] = None,
            accept: Collection[int] = ()) -> requests.Response:
        """GET an API path (``params``: query parameters such as a ``filter``)."""
        return self.request("GET", path, params=params, accept=accept)

    def post(self, path: str, body: Any, *, idempotent: bool = False,
             accept: Collection[int] = ()) -> requests.Response:
        """POST a JSON body (an object, or already serialised text)."""
        return self.request("POST", path, body, idempotent=idempotent, accept=accept)

    def patch(self, path: str, body: Any, *, idempotent: bool = True,
              accept: Collection[int] = ()) -> requests.Response:
        """PATCH with a JSON body (a PATCH sets values: repeating it is harmless)."""
        return self.request("PATCH", path, body, idempotent=idempotent, accept=accept)

    def put(self, path: str, body: Any, *, accept: Collection[int] = ()) -> requests.Response:
        """PUT a JSON body (replaces an object: repeating it is harmless)."""
        return self.request("PUT", path, body, idempotent=True, accept=accept)

    def delete(self, path: str, *, accept: Collection[int] = ()) -> requests.Response:
        """DELETE an API path."""
        return self.request("DELETE", path, accept=accept)

    def request(self, method: str, path: str, body: Any = None, *,
                params: Optional[Dict[str, str]] = None,
                idempotent: bool = False, accept: Collection[int] = ()) -> requests.Response:
        """Send an authenticated request and return a 2xx (or accepted) answer.

        A 401 leads to one re-login and one repetition. Other statuses raise
        by kind (see :mod:`scingestor.scicat.errors`): 5xx
        :class:`ServerError`, 403 :class:`SciCatForbiddenError` (on DELETE
        :class:`DeleteForbiddenError`), other 4xx :class:`RejectedError`,
        unless listed in ``accept``. ``idempotent`` allows repeating a POST
        after a lost connection or a gateway error.
        """
        method = method.upper()
        data = body if body is None or isinstance(body, (str, bytes)) else json.dumps(body)
        url = self.url(path)
        used = self.token()
        response = self._send(method, url, data, idempotent=idempotent,
                              token=used, params=params)
        if self._token_refused(response.status_code) and self._credentials is not None:
            logger.info("SciCat refused the token (%s %s): logging in again",
                        method, strip_query(response.url))
            token = self._renew(used)
            response = self._send(method, url, data, idempotent=idempotent,
                                  token=token, params=params)
        status = response.status_code
        if 200 <= status < 300 or status in accept:
            self._last_error = ""
            return response
        error = _error_for(method, strip_query(response.url), status, server_message(response))
        self._last_error = str(error)
        raise error

    def _token_refused(self, status: int) -> bool:
        """401; under v4 also 403, its answer to an expired or unknown token.

        (A 403 that stays after the new login is a real permission problem.)
        """
        return status == 401 or (status == 403 and self.api_version == 4)

    def probe(self) -> bool:
        """True if SciCat answers at all (any status below 500), without login.

        Cheap and quick (:data:`PROBE_TIMEOUT`, no retries): the service calls
        it while SciCat is unreachable, to resume as soon as it answers.
        """
        try:
            response = self._session.get(self._base, timeout=PROBE_TIMEOUT,
                                         headers={"Accept": "application/json"})
        except requests.RequestException:
            return False
        self._reachable = response.status_code < 500
        return self._reachable

    def _retryable_status(self, method: str, status: int, idempotent: bool) -> bool:
        if status in GATEWAY_STATUSES:
            return method in SAFE_METHODS or idempotent
        if status == 500:
            return method in SAFE_METHODS
        return False

    def _send(self, method: str, url: str, data: Any, *, idempotent: bool,
              token: Optional[Secret],
              params: Optional[Dict[str, str]] = None) -> requests.Response:
        """Send one request, repeated after :data:`REQUEST_RETRY_DELAYS` when that is safe.

        At most ``max_request_tries_number`` tries. Returns the last answer;
        raises :class:`SciCatConnectionError` when none came.
        """
        cfg = self._cfg
        headers: Dict[str, str] = {str(k): str(v) for k, v in dict(cfg.request_headers).items()}
        query: Dict[str, str] = dict(params or {})
        if token:
            headers["Authorization"] = f"Bearer {token.reveal()}"
            if cfg.token_in_query:
                query["access_token"] = token.reveal()
        if data is not None and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
        delays = list(REQUEST_RETRY_DELAYS[:max(0, int(cfg.max_request_tries_number or 1) - 1)])
        while True:
            try:
                response = self._session.request(method, url, data=data, headers=headers,
                                                 params=query or None,
                                                 timeout=cfg.request_timeout)
            except requests.RequestException as exc:
                self._reachable = False
                reason = self._describe(exc, token)
                self._last_error = f"{method} {url}: {reason}"
                retry = method in SAFE_METHODS or idempotent or _not_sent(exc)
                if not (retry and delays) or self._stop.is_set():
                    raise SciCatConnectionError(method, url, None, reason) from None
                logger.info("%s %s: %s; retrying in %.3g s", method, url, reason, delays[0])
            else:
                self._reachable = True
                status = response.status_code
                logger.debug("%s %s -> %s", method, url, status)
                if not (delays and self._retryable_status(method, status, idempotent)):
                    return response
                logger.info("%s %s: %s %s; retrying in %.3g s", method, url, status,
                            server_message(response), delays[0])
            if self._stop.wait(delays.pop(0)):
                raise SciCatConnectionError(method, url, None, "stopped while retrying")

    @staticmethod
    def _describe(exc: Exception, token: Optional[Secret]) -> str:
        """A short reason for a failed connection, without URL queries or secrets."""
        if isinstance(exc, requests.Timeout):
            reason = "timed out"
        elif _caused_by(exc, ConnectionRefusedError):
            reason = "connection refused"
        elif _caused_by(exc, socket.gaierror):
            reason = "host name not resolved"
        elif isinstance(exc, requests.ConnectionError):
            reason = "connection failed"
        else:
            reason = type(exc).__name__
        if token and token.reveal() in reason:
            reason = reason.replace(token.reveal(), "***")
        return f"{reason} ({type(exc).__name__})"


def _error_for(method: str, url: str, status: int, message: str) -> SciCatError:
    """The exception type that says what to do about an HTTP error status."""
    if status == 401:
        return SciCatAuthError(method, url, status, message)
    if status == 403:
        kind = DeleteForbiddenError if method == "DELETE" else SciCatForbiddenError
        return kind(method, url, status, message)
    if status >= 500:
        return ServerError(method, url, status, message)
    if 400 <= status < 500:
        return RejectedError(method, url, status, message)
    return SciCatError(method, url, status, message)


def _caused_by(exc: BaseException, kind: type) -> bool:
    """True if ``kind`` is anywhere in the chain of causes (requests wraps urllib3 wraps OS)."""
    seen = set()
    stack = [exc]
    while stack:
        item = stack.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, kind):
            return True
        stack.extend([item.__cause__, item.__context__, getattr(item, "reason", None)])
        stack.extend(arg for arg in getattr(item, "args", ()) if isinstance(arg, BaseException))
    return False


def _not_sent(exc: Exception) -> bool:
    """True if the request certainly never reached the server (no connection was made)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    return _caused_by(exc, NewConnectionError) or _caused_by(exc, ConnectionRefusedError)
