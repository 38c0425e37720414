"""A real Tango database and Sardana server for the macro tests.

The environment lives in the package (:mod:`scingestor.testing.sardana_env`) so
that ``scingestor-demo --full`` uses the same code; this module re-exports it
for the tests.
"""

from __future__ import annotations

import logging

from scingestor.testing.sardana_env import (
    DOOR,
    INSTANCE,
    MACROSERVER,
    POOL,
    MacroRun,
    SardanaEnv,
    free_port,
)

logger = logging.getLogger(__name__)

__all__ = ["DOOR", "INSTANCE", "MACROSERVER", "POOL", "MacroRun", "SardanaEnv", "free_port"]
