"""Watching beamtime directories: one inotify descriptor, one thread, polling fallback."""

from __future__ import annotations

import logging

from .counts import WatchCounts
from .discovery import Discovery, DiscoverySnapshot
from .inotify import Event, Notifier, NotifierError, WatchError, inotify_available
from .schedule import poll_period
from .sink import DiscoverySink
from .watcher import THREAD_NAME, Watcher
from .watchset import MODE_INOTIFY, MODE_POLLING

logger = logging.getLogger(__name__)

__all__ = [
    "MODE_INOTIFY",
    "MODE_POLLING",
    "THREAD_NAME",
    "Discovery",
    "DiscoverySink",
    "DiscoverySnapshot",
    "Event",
    "Notifier",
    "NotifierError",
    "WatchCounts",
    "WatchError",
    "Watcher",
    "inotify_available",
    "poll_period",
]
