"""The SciCat credential file: a ready token, a user/password pair or a bare password.

Forms (file text is whitespace-stripped):

1. JSON object with ``"jwt"`` → that value is the access token, no login.
2. JSON object with ``"id"`` → that value is the access token, no login.
3. JSON object with ``"username"``/``"password"`` → login; a missing user name
   falls back to ``ingestor_username``.
4. Anything else (plain text, JSON that is not an object) → the text is the
   password for ``ingestor_username``.

Values are wrapped in :class:`~scingestor.secret.Secret` and registered with the
log masking filter. Error messages name the file, never its contents.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from typing import Any

from scingestor.config import IngestorConfig
from scingestor.logsetup import register_secret
from scingestor.secret import Secret

logger = logging.getLogger(__name__)


class CredentialError(Exception):
    """The credential file is missing, empty, unreadable or malformed."""


@dataclass(frozen=True)
class Credentials:
    """What to authenticate with: a ``token`` or a ``username``/``password`` pair."""

    username: str
    password: Secret | None = None
    token: Secret | None = None

    @property
    def needs_login(self) -> bool:
        """Return whether a login request is needed to obtain a token."""
        return self.token is None


def _secret(value: str) -> Secret:
    register_secret(value)
    return Secret(value)


def _text_value(value: Any, path: str, name: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise CredentialError(f"{path}: credential field {name!r} must be a string")
    text = str(value).strip()
    if not text:
        raise CredentialError(f"{path}: credential field {name!r} is empty")
    return text


def parse_credentials(text: str, default_username: str, path: str = "credentials") -> Credentials:
    """Interpret the text of a credential file (``path`` is only used in messages)."""
    text = text.strip()
    if not text:
        raise CredentialError(f"{path}: credential file is empty")
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return Credentials(username=default_username, password=_secret(text))
    for name in ("jwt", "id"):
        if name in data:
            token = _text_value(data[name], path, name)
            return Credentials(username=default_username, token=_secret(token))
    if "password" not in data:
        if "username" in data:
            raise CredentialError(f"{path}: credential file has a username but no password")
        raise CredentialError(
            f"{path}: credential JSON object has none of jwt, id, username, password"
        )
    password = _text_value(data["password"], path, "password")
    username = default_username
    if "username" in data:
        username = _text_value(data["username"], path, "username")
    return Credentials(username=username, password=_secret(password))


def read_credential_file(path: str, default_username: str) -> Credentials:
    """Read and interpret the credential file ``path``."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except UnicodeDecodeError:
        raise CredentialError(f"{path}: credential file is not UTF-8 text") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise CredentialError(f"{path}: cannot read credential file: {reason}") from None
    return parse_credentials(text, default_username, path)


def read_credentials(cfg: IngestorConfig) -> Credentials:
    """Read the credentials named by ``cfg.ingestor_credential_file``."""
    if not cfg.ingestor_credential_file:
        raise CredentialError("ingestor_credential_file is not set in the configuration")
    return read_credential_file(cfg.ingestor_credential_file, cfg.ingestor_username)


def read_token_file(path: str) -> Secret:
    """Read a file holding only an access token (``scicat_ingest -p``)."""
    try:
        with open(path, encoding="utf-8") as fh:
            token = fh.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not readable text"
        raise CredentialError(f"{path}: cannot read token file: {reason}") from None
    if not token:
        raise CredentialError(f"{path}: token file is empty")
    return _secret(token)


class CredentialSource:
    """Credentials of one file, re-read whenever its modification time changes."""

    def __init__(self, path: str, default_username: str) -> None:
        self.path = path
        self.default_username = default_username
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._cached: Credentials | None = None

    @classmethod
    def from_config(cls, cfg: IngestorConfig) -> CredentialSource:
        """Build the source for ``cfg.ingestor_credential_file``."""
        if not cfg.ingestor_credential_file:
            raise CredentialError("ingestor_credential_file is not set in the configuration")
        return cls(cfg.ingestor_credential_file, cfg.ingestor_username)

    def get(self) -> Credentials:
        """Return the current credentials, reading the file again if it changed."""
        with self._lock:
            try:
                st = os.stat(self.path)
            except OSError as exc:
                reason = exc.strerror or type(exc).__name__
                raise CredentialError(
                    f"{self.path}: cannot read credential file: {reason}"
                ) from None
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
            if self._cached is None or stamp != self._stamp:
                self._cached = read_credential_file(self.path, self.default_username)
                self._stamp = stamp
                logger.debug("Credentials read from %s", self.path)
            return self._cached

    def load(self) -> Credentials:
        """Same as :meth:`get` (the name the SciCat client uses)."""
        return self.get()

    def __repr__(self) -> str:
        return f"CredentialSource({self.path!r})"
