"""Taurus (Qt) graphical tools for the scingestor ``SciCatIngestor`` Tango device.

:class:`scingestor_gui.panel.IngestorPanel` is the status and control panel; the console
script ``scingestor-panel <device>`` (:func:`scingestor_gui.__main__.main`) opens it in
its own window; ``scingestor-gui`` (:mod:`scingestor_gui.app`) is the TaurusGUI overview of
every ingestor of a beamline or hall. The panel needs the ``gui`` extra (taurus and a Qt
binding such as PyQt5). Importing this package does not import Qt.
"""

__all__ = ["IngestorPanel"]


def __getattr__(name: str):  # PEP 562: import the Qt code only when it is asked for
    if name == "IngestorPanel":
        from scingestor_gui.panel import IngestorPanel

        return IngestorPanel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
