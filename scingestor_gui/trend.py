"""``RateTrend``: a small plot of the queue length and the ingestion rate over time.

It is fed by the same attributes a ``TaurusTrend`` would show (``QueueLength`` and
``ScansPerMinute``), through :class:`scingestor_gui.feed.AttributeFeed`, and draws
itself with ``QPainter`` only, so it needs no plotting library and renders under the
``offscreen`` Qt platform. Every value that arrives is a sample; a timer repeats the
last values every few seconds so that the time axis keeps moving while nothing changes.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Deque, Dict, List, Optional, Tuple

from taurus.external.qt import Qt

#: (attribute, legend, colour) of the curves.
CURVES: Tuple[Tuple[str, str, str], ...] = (
    ("QueueLength", "queue length (scans)", "#1f5fbf"),
    ("ScansPerMinute", "ingestion rate (scans/min)", "#d07000"),
)


class RateTrend(Qt.QWidget):
    """Queue length and ingestion rate over the last ``window`` seconds."""

    def __init__(self, parent: Optional[Qt.QWidget] = None, window: float = 600.0,
                 tick_ms: int = 5000) -> None:
        Qt.QWidget.__init__(self, parent)
        self.window = float(window)
        self._samples: Dict[str, Deque[Tuple[float, float]]] = {
            name: deque(maxlen=2000) for name, _, _ in CURVES}
        self._last: Dict[str, float] = {}
        self.setMinimumSize(260, 150)
        self.setSizePolicy(Qt.QSizePolicy.Expanding, Qt.QSizePolicy.Expanding)
        self.setToolTip("Queue length (QueueLength) and ingestion rate (ScansPerMinute) "
                        "of the device over the last minutes")
        self._timer = Qt.QTimer(self)
        self._timer.timeout.connect(self._tick)
        self._timer.start(tick_ms)

    def addValue(self, attribute: str, value: object, when: Optional[float] = None) -> None:
        """A new value of ``attribute`` (None: unreadable, ends the curve's last value)."""
        if attribute not in self._samples:
            return
        if value is None:
            self._last.pop(attribute, None)
            return
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return
        self._last[attribute] = number
        self._samples[attribute].append((time.time() if when is None else when, number))
        self.update()

    def samples(self, attribute: str) -> List[Tuple[float, float]]:
        """The ``(epoch s, value)`` samples of a curve, oldest first."""
        return list(self._samples.get(attribute, ()))

    def clear(self) -> None:
        """Forget every sample (another device)."""
        for samples in self._samples.values():
            samples.clear()
        self._last.clear()
        self.update()

    def _tick(self) -> None:
        now = time.time()
        for attribute, value in list(self._last.items()):
            self._samples[attribute].append((now, value))
        self.update()

    # -- drawing ---------------------------------------------------------------------------------
    def paintEvent(self, event: Qt.QPaintEvent) -> None:  # noqa: N802 - Qt's name
        painter = Qt.QPainter(self)
        try:
            self._paint(painter)
        finally:
            painter.end()

    def _paint(self, painter: Qt.QPainter) -> None:
        painter.setRenderHint(Qt.QPainter.Antialiasing)
        painter.fillRect(self.rect(), Qt.QColor("white"))
        metrics = painter.fontMetrics()
        line = metrics.height()
        left, right, top, bottom = metrics.horizontalAdvance("0000") + 8, 8, line + 8, line + 6
        plot = Qt.QRectF(left, top, max(10, self.width() - left - right),
                         max(10, self.height() - top - bottom))
        now = time.time()
        start = now - self.window
        values = [v for name, _, _ in CURVES for t, v in self._samples[name] if t >= start]
        top_value = max([1.0] + values) * 1.15
        painter.setPen(Qt.QPen(Qt.QColor("#c0c0c0"), 1))
        painter.drawRect(plot)
        painter.setPen(Qt.QColor("#404040"))
        for fraction in (0.0, 0.5, 1.0):
            y = plot.bottom() - fraction * plot.height()
            painter.drawText(Qt.QRectF(0, y - line / 2, left - 4, line),
                             int(Qt.Qt.AlignRight | Qt.Qt.AlignVCenter),
                             f"{top_value * fraction:.3g}")
        minutes = int(self.window // 60)
        painter.drawText(Qt.QRectF(plot.left(), plot.bottom() + 2, plot.width(), line),
                         int(Qt.Qt.AlignLeft), f"-{minutes} min")
        painter.drawText(Qt.QRectF(plot.left(), plot.bottom() + 2, plot.width(), line),
                         int(Qt.Qt.AlignRight), "now")
        x_legend = plot.left()
        for name, legend, colour in CURVES:
            painter.setPen(Qt.QPen(Qt.QColor(colour), 2))
            painter.drawLine(Qt.QPointF(x_legend, line / 2 + 3),
                             Qt.QPointF(x_legend + 16, line / 2 + 3))
            text = legend
            if name in self._last:
                text += f": {self._last[name]:.3g}"
            painter.setPen(Qt.QColor("#202020"))
            painter.drawText(Qt.QPointF(x_legend + 20, line - 1), text)
            x_legend += 20 + metrics.horizontalAdvance(text) + 16
            points = [Qt.QPointF(plot.left() + (t - start) / self.window * plot.width(),
                                 plot.bottom() - v / top_value * plot.height())
                      for t, v in self._samples[name] if t >= start]
            if name in self._last and points:
                points.append(Qt.QPointF(plot.right(), points[-1].y()))
            if len(points) >= 2:
                painter.setPen(Qt.QPen(Qt.QColor(colour), 2))
                painter.drawPolyline(Qt.QPolygonF(points))
