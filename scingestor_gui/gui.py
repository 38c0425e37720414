"""``IngestorGui``: the TaurusGUI of ``scingestor-gui`` (overview + one panel per ingestor).

Its permanent panel *Ingestors* is an :class:`~scingestor_gui.overview.IngestorOverview`.
Opening a row creates a custom, permanent panel named after the device
(:func:`panel_name`) holding the device's :class:`~scingestor_gui.panel.IngestorPanel`
with its model in the configuration, so the panel is part of the saved settings and of
every perspective, as TaurusGUI keeps its own custom panels: the next start re-creates
the panels that were open, and *Perspectives* saves and loads layouts.
"""

from __future__ import annotations

import logging
from typing import List, Optional, Sequence

from taurus.qt.qtgui.taurusgui import TaurusGui

from scingestor_gui.names import OVERVIEW_PANEL, panel_name
from scingestor_gui.overview import IngestorOverview
from scingestor_gui.panel import IngestorPanel

logger = logging.getLogger(__name__)

__all__ = ["IngestorGui", "OVERVIEW_PANEL", "panel_name"]


class IngestorGui(TaurusGui):
    """A TaurusGUI with the overview panel of ``devices`` and one panel per opened ingestor.

    ``settingsname`` is an INI file for the settings and perspectives (default:
    TaurusGUI's per-user file of the application, ``~/.config/<org>/<app>.ini``).
    """

    def __init__(self, devices: Sequence[str], settingsname: Optional[str] = None) -> None:
        self._devices = list(devices)
        TaurusGui.__init__(self, None, confname=None, settingsname=settingsname or None)
        self.setWindowTitle("SciCat ingestors")

    def loadConfiguration(self, confname: Optional[str]) -> None:
        """Create the overview panel, then let TaurusGui restore the settings."""
        # The overview panel exists before the settings are restored, so its place and
        # the ingestor panels opened last time come back.
        self.overview = IngestorOverview()
        self.overview.setDevices(self._devices)
        self.overview.deviceActivated.connect(self.openIngestor)
        self.createPanel(self.overview, OVERVIEW_PANEL, permanent=True)
        TaurusGui.loadConfiguration(self, confname)

    def _loadManualUri(self, conf, xmlroot) -> None:  # noqa: ANN001 - TaurusGui's hook
        # Without QtWebEngine TaurusGui makes an empty "Manual" panel whose saved settings
        # it cannot restore (an error box at the next start): no manual panel then.
        if getattr(self, "helpManualBrowser", None) is not None:
            TaurusGui._loadManualUri(self, conf, xmlroot)

    def openIngestor(self, device: str) -> IngestorPanel:
        """Show the panel of ``device``, creating it (custom, permanent) if needed."""
        name = panel_name(device)
        if name in self.getPanelNames() and self.getPanel(name).widget() is not None:
            panel = self.getPanel(name)
        else:
            widget = IngestorPanel()
            widget.setModelInConfig(True)  # the model is saved with the panel
            widget.setModel(device)
            panel = self.createPanel(widget, name, custom=True, permanent=True)
        panel.show()
        panel.raise_()
        return panel.widget()

    def ingestorPanels(self) -> List[str]:
        """The names of the panels that hold an :class:`IngestorPanel`."""
        return [name for name in self.getPanelNames()
                if isinstance(self.getPanel(name).widget(), IngestorPanel)]
