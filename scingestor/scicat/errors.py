"""Exceptions raised by the SciCat client and the dataset publisher."""

from __future__ import annotations

import logging
from typing import Optional

logger = logging.getLogger(__name__)

FORBIDDEN_HINT = ("the ingestor account cannot read this dataset"
                  " — give it an admin group / accessGroups")


class SciCatError(Exception):
    """A SciCat request failed.

    ``url`` never carries a query string (so never a token); ``status`` is
    the HTTP status, or ``None`` when no answer was received; ``message`` is
    the server's ``message``/``error`` text.
    """

    def __init__(self, method: str, url: str, status: Optional[int], message: str) -> None:
        self.method = method
        self.url = url
        self.status = status
        self.message = message
        super().__init__(self.__str__())

    def __str__(self) -> str:
        status = "no answer" if self.status is None else str(self.status)
        text = f"{self.method} {self.url}: {status}"
        return f"{text} {self.message}" if self.message else text

    def __reduce__(self):
        return (type(self), (self.method, self.url, self.status, self.message))


class SciCatAuthError(SciCatError):
    """Login failed, no credentials, or the token was refused after a re-login."""


class SciCatForbiddenError(SciCatError):
    """The server answered 403: the account may not read or write this object."""

    def __str__(self) -> str:
        return f"{super().__str__()} ({FORBIDDEN_HINT})"


class SciCatConnectionError(SciCatError):
    """The server could not be reached (refused, timeout, connection lost)."""


class DatasetValidationError(ValueError):
    """A dataset document fails the checks made before anything is sent."""
