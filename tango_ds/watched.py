"""What the ``SciCatIngestor`` device watches, as lists: ``WatchedBeamtimes``, ``WatchedScanDirs``.

The status snapshot carries only counts and a ``watch_version`` (scingestor/status.py), so
each update costs the same however many directories are watched. The lists are asked from
the service when an attribute is read; the ``WatchedBeamtimes`` change events are made
again only when ``watch_version`` changed. ``WatchedScanDirs`` has no events: it may hold
thousands of entries (docs/tango.md, "Attributes").
"""

from __future__ import annotations

import logging
from typing import Any, List, Optional, Tuple

from tango.server import attribute

from scingestor.service import IngestorService
from scingestor.status import StatusSnapshot
from tango_ds.descriptions import described
from tango_ds.values import SPECTRUM_LENGTH

logger = logging.getLogger(__name__)

#: Longest WatchedScanDirs (a beamtime may have many thousands of scan directories).
SCANDIR_LIST_LENGTH = 1 << 20


class WatchedListsInterface:
    """The device's watched-list attributes (mixed into the device class).

    Uses the device's ``_service`` and ``_beamtimes_cache`` (set in ``init_device``).
    """

    _service: Optional[IngestorService]
    _beamtimes_cache: Tuple[Any, Tuple[str, ...]]

    def _watched_beamtimes(self, snapshot: StatusSnapshot) -> Tuple[str, ...]:
        """WatchedBeamtimes for the events: asked again only when the watched set changed."""
        service = self._service
        key = (id(service), snapshot.watch_version)
        if self._beamtimes_cache[0] != key:
            files = service.watched_beamtimes() if service is not None else []
            self._beamtimes_cache = (key, tuple(files))
        return self._beamtimes_cache[1]

    @attribute(dtype=(str,), max_dim_x=SPECTRUM_LENGTH, **described("WatchedBeamtimes"))
    def WatchedBeamtimes(self) -> List[str]:
        service = self._service
        return service.watched_beamtimes() if service is not None else []

    @attribute(dtype=(str,), max_dim_x=SCANDIR_LIST_LENGTH, **described("WatchedScanDirs"))
    def WatchedScanDirs(self) -> List[str]:
        service = self._service
        return service.watched_scandirs() if service is not None else []
