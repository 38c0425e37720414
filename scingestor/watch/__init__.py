"""Watching beamtime directories: one inotify descriptor, one thread, polling fallback."""

from __future__ import annotations

import logging

from .discovery import (
    MODE_INOTIFY,
    MODE_POLLING,
    Discovery,
    DiscoverySink,
    DiscoverySnapshot,
    poll_period,
)
from .inotify import Event, Notifier, NotifierError, WatchError, inotify_available
from .watcher import THREAD_NAME, Watcher

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
    "WatchError",
    "Watcher",
    "inotify_available",
    "poll_period",
]
