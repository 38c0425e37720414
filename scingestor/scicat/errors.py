"""Exceptions of the SciCat client and the publisher; the type says what to do.

The policy (README "SciCat access"):

* :class:`TransientError` (no answer, 5xx): SciCat cannot answer now. The batch
  waits, nothing is recorded, and it is tried again as soon as SciCat answers.
* :class:`SciCatAuthError`: SciCat answers but the ingestor cannot log in. The
  batch waits with back-off (the credential file is read again each time).
* :class:`RejectedError` (4xx): SciCat said no to this scan. It is recorded as
  failed with the server's message and retried with the per-scan back-off.
* :class:`InvalidDocumentError`: our own document is wrong (checked before
  anything is sent). Recorded and retried like a rejection.
"""

from __future__ import annotations

import logging
from typing import Optional

logger = logging.getLogger(__name__)

#: What a 403 means, by the kind of request that got it.
FORBIDDEN_HINTS = {
    "GET": "the ingestor account cannot read this object: give it an admin group "
           "(SciCat setting ADMIN_GROUPS) or add its group to the dataset's accessGroups",
    "DELETE": "the ingestor account may not delete it: add its group to the SciCat "
              "setting DELETE_GROUPS",
}
DEFAULT_FORBIDDEN_HINT = ("the ingestor account may not write this object: check the SciCat "
                          "settings CREATE_DATASET_GROUPS / ADMIN_GROUPS")


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


class TransientError(SciCatError):
    """SciCat did not answer usefully (no answer, 5xx): wait until it answers again."""


class SciCatConnectionError(TransientError):
    """The server could not be reached (refused, timeout, connection lost)."""


class ServerError(TransientError):
    """The server answered 5xx."""


class SciCatAuthError(SciCatError):
    """Login failed, no credentials, or the token was refused after a re-login."""


class RejectedError(SciCatError):
    """SciCat answered 4xx: this request will not succeed by repeating it."""


class SciCatForbiddenError(RejectedError):
    """403: the account may not do this; the text names the SciCat setting to change."""

    @property
    def hint(self) -> str:
        return FORBIDDEN_HINTS.get(self.method, DEFAULT_FORBIDDEN_HINT)

    def __str__(self) -> str:
        return f"{super().__str__()} ({self.hint})"


class DeleteForbiddenError(SciCatForbiddenError):
    """403 on DELETE: the ingestor account is not in SciCat's ``DELETE_GROUPS``."""


class InvalidDocumentError(ValueError):
    """A document fails the checks made before anything is sent."""
