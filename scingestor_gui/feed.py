"""``AttributeFeed``: the values of some attributes of one device, delivered in the Qt thread.

The Taurus widgets (``TaurusLabel``, ``TaurusLed``) show one value each. The history
table, the failed scans and the trend need the *value* of an attribute (a JSON string,
a number) to build something else from it; :class:`AttributeFeed` subscribes to those
attributes through Taurus (the device's change events, or Taurus' polling when the
device sends none) and emits ``valueChanged(attribute, value)`` in the GUI thread.
An attribute that cannot be read (device down, or a device that does not have it,
e.g. an older server) gives ``value`` ``None``.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Optional, Sequence

import taurus
from taurus.core.taurusbasetypes import TaurusEventType
from taurus.external.qt import Qt

from scingestor_gui.names import attribute_model

logger = logging.getLogger(__name__)


def plain_value(value: Any) -> Any:
    """A Taurus read value as plain Python (a pint quantity gives its magnitude)."""
    rvalue = getattr(value, "rvalue", value)
    return getattr(rvalue, "magnitude", rvalue)


class _Listener:
    """The Taurus listener of one attribute (Taurus keeps listeners by weak reference)."""

    def __init__(self, feed: AttributeFeed, attribute: str) -> None:
        self.feed = feed
        self.attribute = attribute

    def eventReceived(self, evt_src: Any, evt_type: Any, evt_value: Any) -> None:
        """Called by Taurus, in any thread."""
        if evt_type == TaurusEventType.Config:
            return
        if evt_type == TaurusEventType.Error or evt_value is None:
            self.feed._arrived.emit(self.attribute, None)
            return
        try:
            self.feed._arrived.emit(self.attribute, plain_value(evt_value))
        except RuntimeError:  # the Qt object is gone (the panel was closed)
            pass


class AttributeFeed(Qt.QObject):
    """Follows ``attributes`` of the device set with :meth:`setDevice`.

    ``valueChanged(attribute, value)`` is emitted in the thread of this object (the GUI
    thread) for every new value; :meth:`value` gives the last one.
    """

    valueChanged = Qt.pyqtSignal(str, object)
    _arrived = Qt.pyqtSignal(str, object)

    def __init__(self, attributes: Sequence[str], parent: Optional[Qt.QObject] = None) -> None:
        Qt.QObject.__init__(self, parent)
        self.attributes = list(attributes)
        self._values: Dict[str, Any] = {}
        self._subscribed: Dict[str, Any] = {}  # attribute -> (taurus attribute, listener)
        self._arrived.connect(self._deliver, Qt.Qt.QueuedConnection)

    def setDevice(self, device: str) -> None:
        """Follow the attributes of ``device`` (a full Taurus device name; '' for none)."""
        self.clear()
        if not device:
            return
        for attribute in self.attributes:
            listener = _Listener(self, attribute)
            try:
                model = taurus.Attribute(attribute_model(device, attribute))
                model.addListener(listener)
            except Exception as exc:  # noqa: BLE001 - an attribute the device lacks
                logger.info("cannot follow %s of %s: %s", attribute, device, exc)
                self._values[attribute] = None
                continue
            self._subscribed[attribute] = (model, listener)

    def clear(self) -> None:
        """Stop following the attributes."""
        for model, listener in self._subscribed.values():
            try:
                model.removeListener(listener)
            except Exception:  # noqa: BLE001 - the device may be gone already
                pass
        self._subscribed.clear()
        self._values.clear()

    def value(self, attribute: str) -> Any:
        """The last value of ``attribute`` (None: unknown or unreadable)."""
        return self._values.get(attribute)

    def _deliver(self, attribute: str, value: Any) -> None:
        if attribute not in self._subscribed:
            return  # from a device followed before
        self._values[attribute] = value
        self.valueChanged.emit(attribute, value)
