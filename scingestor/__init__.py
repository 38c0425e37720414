"""scingestor: ingest finished beamline scans into the SciCat metadata catalogue."""

__version__ = "2.1.0"
