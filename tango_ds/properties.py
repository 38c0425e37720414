"""What the ``SciCatIngestor`` device properties set up: the ingestor's logging and configuration.

docs/tango.md "Device properties" describes ``ConfigFile``, ``LogLevel`` and
``LogFile``; the configuration file is the daemon's (docs/configuration.md).
"""

from __future__ import annotations

import logging
import os
from typing import Optional, Tuple

from scingestor.config import ConfigError, IngestorConfig, load_config
from scingestor.logsetup import LOG_LEVELS, setup_logging

logger = logging.getLogger(__name__)

# (level, file) installed last: logging is process-wide, every device of the server shares it
_installed: Optional[Tuple[str, str]] = None


def install_logging(level_property: str, file_property: str) -> str:
    """Set up logging from ``LogLevel`` and ``LogFile``; '' when done, else the fault text.

    Nothing is done when the same level and file are installed already.
    """
    global _installed
    level = (level_property or "info").strip().lower()
    log_file = os.path.expanduser((file_property or "").strip())
    wanted = (level, log_file)
    if _installed == wanted:
        return ""
    try:
        setup_logging(level, log_file or None, timestamps=bool(log_file))
    except ValueError as exc:
        name = "LogLevel" if level not in LOG_LEVELS else "LogFile"
        return f"Bad {name} device property: {exc}"
    _installed = wanted
    return ""


def read_config(config_file: str) -> IngestorConfig:
    """The configuration named by the ``ConfigFile`` property (``~`` expanded).

    Raises :class:`ConfigError` when the property is empty, the file cannot be
    loaded, or it names nothing to watch.
    """
    path = os.path.expanduser((config_file or "").strip())
    if not path:
        raise ConfigError("the ConfigFile device property is not set")
    cfg = load_config(path)
    if not cfg.beamtime_dirs and not cfg.beamtime_base_dir:
        raise ConfigError(f"{path}: neither beamtime_dirs nor beamtime_base_dir is set: "
                          "nothing to watch")
    return cfg
