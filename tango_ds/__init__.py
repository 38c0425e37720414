"""Tango device server ``SciCatIngestor`` (module :mod:`tango_ds.SciCatIngestor`).

Importing this package does not import PyTango; the device module does.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)
