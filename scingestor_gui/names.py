"""Taurus model names of a ``SciCatIngestor`` device's attributes (no Qt needed)."""

from __future__ import annotations

__all__ = ["APP_NAME", "ORGANIZATION", "OVERVIEW_PANEL", "attribute_model", "panel_name"]

#: The application and organisation names of ``scingestor-gui`` (its settings file).
APP_NAME = "scingestor-gui"
ORGANIZATION = "scingestor"
#: The name of the overview panel in the TaurusGUI.
OVERVIEW_PANEL = "Ingestors"


def attribute_model(device: str, attribute: str) -> str:
    """The Taurus model name of ``attribute`` of ``device``.

    A device of a server without a database (``...#dbase=no``) gets Taurus' own
    ``tango-nodb`` scheme: Taurus drops the ``#dbase=no`` fragment when it derives the
    device of an attribute name, so ``tango://h:1234/a/b/c/State#dbase=no`` would be
    looked up in a (non-existent) database at ``h:1234``. Hence
    ``tango://h:1234/a/b/c#dbase=no`` gives ``tango-nodb://h:1234/a/b/c/State``.
    """
    base, separator, fragment = device.strip().partition("#")
    base = base.rstrip("/")
    if fragment == "dbase=no":
        if base.startswith("tango://"):
            return f"tango-nodb://{base[len('tango://'):]}/{attribute}"
        if base.startswith("//"):
            return f"tango-nodb:{base}/{attribute}"
    return f"{base}/{attribute}{separator}{fragment}"


def panel_name(device: str) -> str:
    """The TaurusGUI panel name of a device's panel: its name without scheme and host."""
    name = device.split("#", 1)[0]
    if "://" in name:
        name = name.split("://", 1)[1].split("/", 1)[1]
    return name.strip("/")
