"""SciCat-compatible development server (SQLite storage, fault injection)."""

from __future__ import annotations

import logging

from .faults import Faults
from .requestlog import RecordedRequest
from .server import DEFAULT_USERS, DevServer

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_USERS", "DevServer", "Faults", "RecordedRequest"]
