"""Sardana macros for the SciCat ingestor.

Add the directory returned by :func:`macro_path` (also printed by
``python -m sardana_macros``) to the MacroServer's ``MacroPath``.
"""

from __future__ import annotations

import logging
import os

logger = logging.getLogger(__name__)

__all__ = ["macro_path"]


def macro_path() -> str:
    """The installed directory holding the macro library ``scingestor_macros.py``."""
    return os.path.dirname(os.path.abspath(__file__))
