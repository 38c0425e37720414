"""User accounts and access tokens of the development server."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, Iterable, Optional, Tuple

logger = logging.getLogger(__name__)

DEFAULT_TOKEN_LIFETIME = 3600.0


@dataclass
class User:
    """An account: ``admin`` accounts read everything, others only their groups."""

    username: str
    password: str
    groups: Tuple[str, ...] = ()
    admin: bool = True
    user_id: str = field(default_factory=lambda: secrets.token_hex(12))

    def can_read(self, doc: dict) -> bool:
        """Return True if the user may read a document with owner/access groups."""
        if self.admin:
            return True
        groups = set(self.groups)
        if doc.get("ownerGroup") in groups:
            return True
        access = doc.get("accessGroups") or []
        return isinstance(access, list) and bool(groups.intersection(access))


@dataclass
class Token:
    """An issued access token."""

    value: str
    username: str
    created: float
    expires: float


class Accounts:
    """Thread-safe registry of users and issued tokens."""

    def __init__(self, token_lifetime: float = DEFAULT_TOKEN_LIFETIME) -> None:
        self.token_lifetime = float(token_lifetime)
        self._lock = threading.Lock()
        self._users: Dict[str, User] = {}
        self._tokens: Dict[str, Token] = {}

    def add_user(self, username: str, password: str, groups: Iterable[str] = (),
                 admin: bool = True) -> User:
        """Create or replace an account."""
        user = User(username, password, tuple(groups), admin)
        with self._lock:
            self._users[username] = user
        return user

    def user(self, username: str) -> Optional[User]:
        """Return the account called ``username`` or None."""
        with self._lock:
            return self._users.get(username)

    def login(self, username: object, password: object) -> Optional[Token]:
        """Check the credentials and issue a token, or return None."""
        with self._lock:
            user = self._users.get(username) if isinstance(username, str) else None
            if user is None or not username or user.password != password:
                return None
            now = time.time()
            token = Token(secrets.token_urlsafe(32), user.username, now,
                          now + self.token_lifetime)
            self._tokens[token.value] = token
            return token

    def authenticate(self, value: Optional[str]) -> Optional[User]:
        """Return the user of a valid, unexpired token, else None."""
        if not value:
            return None
        with self._lock:
            token = self._tokens.get(value)
            if token is None:
                return None
            if token.expires <= time.time():
                del self._tokens[value]
                return None
            return self._users.get(token.username)

    def expire_tokens(self) -> None:
        """Invalidate every issued token."""
        with self._lock:
            self._tokens.clear()

    def set_token_lifetime(self, seconds: float) -> None:
        """Change the lifetime of tokens issued from now on."""
        with self._lock:
            self.token_lifetime = float(seconds)
