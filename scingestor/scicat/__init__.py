"""SciCat REST client, API dialect (v3/v4) and dataset publisher."""

from __future__ import annotations

import logging

from scingestor.scicat.api import ApiDialect
from scingestor.scicat.client import SciCatClient
from scingestor.scicat.errors import (
    DeleteForbiddenError,
    InvalidDocumentError,
    RejectedError,
    SciCatAuthError,
    SciCatConnectionError,
    SciCatError,
    SciCatForbiddenError,
    ServerError,
    TransientError,
)
from scingestor.scicat.publish import DatasetPublisher, DatasetResult, SyncResult

logger = logging.getLogger(__name__)

__all__ = [
    "ApiDialect",
    "DatasetPublisher",
    "DatasetResult",
    "DeleteForbiddenError",
    "InvalidDocumentError",
    "RejectedError",
    "SciCatAuthError",
    "SciCatClient",
    "SciCatConnectionError",
    "SciCatError",
    "SciCatForbiddenError",
    "ServerError",
    "SyncResult",
    "TransientError",
]
