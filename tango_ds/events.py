"""The event pump of the ``SciCatIngestor`` device: one thread pushing changed attribute values.

The service notifies status changes from its own threads; the pump turns each burst
of notifications into one call of the device's push function, in a thread known to
omniORB, and only once the server has started (docs/tango.md "Attributes": change
and archive events).
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Callable

import tango

logger = logging.getLogger(__name__)

_REFRESH = object()
_STOP = object()


class EventPump:
    """Calls ``push()`` after every burst of :meth:`refresh` calls, in its own thread."""

    def __init__(self, name: str, push: Callable[[], None]) -> None:
        self._push = push
        self._events: queue.Queue = queue.Queue()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=name)

    def start(self) -> None:
        """Start the pump thread."""
        self._thread.start()

    def refresh(self) -> None:
        """Ask for a push of whatever changed (any thread, never blocks)."""
        self._events.put(_REFRESH)

    def stop_pushing(self) -> None:
        """Push nothing more (the device is going away); :meth:`close` ends the thread."""
        self._stopping.set()

    def close(self, timeout: float = 5.0) -> None:
        """End the pump thread, waiting at most ``timeout`` seconds."""
        self._events.put(_STOP)
        self._thread.join(timeout)

    def _run(self) -> None:
        with tango.EnsureOmniThread():
            while True:
                item = self._events.get()
                stop = item is _STOP
                while not stop:
                    try:
                        stop = self._events.get_nowait() is _STOP
                    except queue.Empty:
                        break
                if stop:
                    return
                if not self._server_ready():
                    continue
                try:
                    self._push()
                except Exception:  # a failed push must not end the pump
                    logger.exception("pushing Tango events failed")

    def _server_ready(self) -> bool:
        """Wait while the server starts (pushing then breaks start-up); False when stopping."""
        util = tango.Util.instance()
        while util.is_svr_starting():
            if self._stopping.wait(0.05):
                return False
        return not util.is_svr_shutting_down() and not self._stopping.is_set()
