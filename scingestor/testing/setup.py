"""Configuration files for a factory beamtime and a dev server (tests, demo, benchmark)."""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable

import yaml

from .factory import BeamtimeFactory

logger = logging.getLogger(__name__)

DEFAULT_PASSWORD = "12342345"


def config_mapping(factory: BeamtimeFactory, scicat_url: str, **overrides: Any) -> dict:
    """A configuration for ``factory``'s beamtime talking to ``scicat_url``.

    A credential file with the dev server's ingestor password is written next to
    the beamtime directory. ``ingestion_delay_time`` is 0 so tests do not wait.
    """
    credentials = os.path.join(factory.root, "credentials.txt")
    if not os.path.exists(credentials):
        with open(credentials, "w", encoding="utf-8") as handle:
            handle.write(DEFAULT_PASSWORD + "\n")
    data: dict[str, Any] = {
        "beamtime_dirs": [factory.beamtime_dir],
        "scicat_url": scicat_url,
        "scicat_users_login_path": "auth/login",
        "ingestor_credential_file": credentials,
        "ingestion_delay_time": 0,
        "retry_backoff_initial": 0.2,
        "retry_backoff_max": 1.0,
        "request_timeout": 10,
    }
    data.update(overrides)
    return data


def write_config(factory: BeamtimeFactory, scicat_url: str, **overrides: Any) -> str:
    """Write :func:`config_mapping` as YAML next to the beamtime; return its path."""
    path = os.path.join(factory.root, "scingestor.yaml")
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(config_mapping(factory, scicat_url, **overrides), handle)
    return path


def wait_for(
    predicate: Callable[[], Any],
    timeout: float = 30.0,
    interval: float = 0.05,
    what: str = "condition",
) -> Any:
    """Poll ``predicate`` until it returns something true; raise ``TimeoutError`` otherwise.

    ``what`` names the awaited condition in the error message.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met within {timeout} s")
        time.sleep(interval)
