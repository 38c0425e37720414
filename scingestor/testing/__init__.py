"""Test helpers: beamtime/scan factory and in-process development server."""

from __future__ import annotations

import logging

from .factory import BeamtimeFactory, beamtime_metadata, png_bytes
from .server import API_VERSIONS, DevServerHandle, running_dev_server, start_dev_server

logger = logging.getLogger(__name__)

__all__ = ["API_VERSIONS", "BeamtimeFactory", "DevServerHandle", "beamtime_metadata", "png_bytes",
           "running_dev_server", "start_dev_server"]
