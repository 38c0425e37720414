"""What discovery reports, and to whom: the :class:`DiscoverySink` protocol."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Protocol, TypeVar

from ..beamtime import Beamtime, ScanDirContext

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


class DiscoverySink(Protocol):
    """Receives discovery's events, from the watcher thread with discovery's lock held.

    Implementations must not block for long and must not call back into the
    watcher (see docs/architecture.md, "Lock order").
    """

    def beamtime_added(self, bt: Beamtime) -> None:
        """A beamtime file is followed (its scan tree is walked next)."""

    def beamtime_removed(self, path: str) -> None:
        """The beamtime file at ``path`` is no longer followed (its lists went first)."""

    def list_found(self, ctx: ScanDirContext) -> None:
        """A dataset list is followed (at start-up or when it appeared)."""

    def list_changed(self, ctx: ScanDirContext) -> None:
        """A followed dataset list was written or replaced."""

    def list_removed(self, ctx: ScanDirContext) -> None:
        """A dataset list is no longer followed (removed, or its directory left the tree)."""


class GuardedSink:
    """Forwards to a sink; an exception is logged and does not reach discovery."""

    def __init__(self, sink: DiscoverySink) -> None:
        self._sink = sink

    def beamtime_added(self, bt: Beamtime) -> None:
        self._call(self._sink.beamtime_added, bt)

    def beamtime_removed(self, path: str) -> None:
        self._call(self._sink.beamtime_removed, path)

    def list_found(self, ctx: ScanDirContext) -> None:
        self._call(self._sink.list_found, ctx)

    def list_changed(self, ctx: ScanDirContext) -> None:
        self._call(self._sink.list_changed, ctx)

    def list_removed(self, ctx: ScanDirContext) -> None:
        self._call(self._sink.list_removed, ctx)

    @staticmethod
    def _call(method: Callable[[_T], None], arg: _T) -> None:
        try:
            method(arg)
        except Exception:
            logger.exception("Discovery sink %s(%r) failed",
                             getattr(method, "__name__", method), arg)


@dataclass(frozen=True)
class SinkCallbacks:
    """A :class:`DiscoverySink` made of five callables (e.g. bound private methods)."""

    on_beamtime_added: Callable[[Beamtime], None]
    on_beamtime_removed: Callable[[str], None]
    on_list_found: Callable[[ScanDirContext], None]
    on_list_changed: Callable[[ScanDirContext], None]
    on_list_removed: Callable[[ScanDirContext], None]

    def beamtime_added(self, bt: Beamtime) -> None:
        self.on_beamtime_added(bt)

    def beamtime_removed(self, path: str) -> None:
        self.on_beamtime_removed(path)

    def list_found(self, ctx: ScanDirContext) -> None:
        self.on_list_found(ctx)

    def list_changed(self, ctx: ScanDirContext) -> None:
        self.on_list_changed(ctx)

    def list_removed(self, ctx: ScanDirContext) -> None:
        self.on_list_removed(ctx)
