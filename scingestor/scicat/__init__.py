"""SciCat REST client and dataset publisher."""

from __future__ import annotations

import logging

from scingestor.scicat.client import SciCatClient
from scingestor.scicat.errors import (
    DatasetValidationError,
    SciCatAuthError,
    SciCatConnectionError,
    SciCatError,
    SciCatForbiddenError,
)
from scingestor.scicat.publish import DatasetPublisher, DatasetResult, SyncResult

logger = logging.getLogger(__name__)

__all__ = [
    "DatasetPublisher",
    "DatasetResult",
    "DatasetValidationError",
    "SciCatAuthError",
    "SciCatClient",
    "SciCatConnectionError",
    "SciCatError",
    "SciCatForbiddenError",
    "SyncResult",
]
