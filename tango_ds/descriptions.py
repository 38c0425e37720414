"""Labels and descriptions of the ``SciCatIngestor`` device properties and attributes.

This is what Jive, Taurus and ``DeviceProxy.get_attribute_config`` show; docs/tango.md
"Device properties" and "Attributes" say the same for readers. The device module
declares the properties and attributes with these texts.
"""

from __future__ import annotations

from typing import Dict, Tuple

#: Device property name -> its description.
PROPERTY_DOCS: Dict[str, str] = {
    "ConfigFile": "Path of the scingestor YAML configuration (the daemon's -c file); '~' is "
                  "expanded. Required: empty puts the device in FAULT.",
    "AutoStart": "Start watching when the device initialises (default true); false leaves "
                 "the device OFF until the Start command.",
    "LogLevel": "Python log level of the ingestor: debug, info, warning, error or critical "
                "(default info).",
    "LogFile": "Write the ingestor log (with timestamps) to this file, rotated at start-up "
               "with 5 backups; empty (default) logs to stderr.",
}

#: Attribute name -> (label, description).
ATTRIBUTE_DOCS: Dict[str, Tuple[str, str]] = {
    "CurrentMeasurement": (
        "Current measurement",
        "Measurement open in the ScanDir directory (or, when ScanDir is empty, in "
        "the most recently active scan directory); empty when none is open."),
    "CurrentMeasurements": (
        "Current measurements",
        "Every scan directory with an open measurement, one 'scandir: name' "
        "string each, sorted by directory."),
    "ScanDir": (
        "Scan directory",
        "Scan directory the measurement and Reingest commands act on (absolute "
        "path, real or core form); empty = the most recently active one."),
    "CurrentScanDir": (
        "Current scan directory",
        "The most recently active scan directory (where the last list change was)."),
    "QueueLength": (
        "Queue length", "Entries of the dataset lists waiting to be ingested."),
    "LastError": (
        "Last error", "The last ingestion or SciCat error (empty when none happened)."),
    "LastErrorTime": (
        "Last error time",
        "When LastError happened, ISO 8601 local time with UTC offset "
        "(e.g. 2024-03-05T10:00:00+01:00); empty when none happened."),
    "IngestedCount": (
        "Ingested datasets", "Datasets ingested since the service started."),
    "FailedCount": (
        "Failed ingestions", "Failed ingestion attempts since the service started."),
    "PendingRetries": (
        "Pending retries", "Failed scans waiting to be retried."),
    "LastIngestedScan": (
        "Last ingested scan", "Name of the scan (or measurement) ingested last."),
    "WatchedBeamtimes": (
        "Watched beamtimes", "The beamtimes being watched."),
    "WatchedScanDirCount": (
        "Watched scan directories", "Number of scan directories being watched."),
    "WatchMode": (
        "Watch mode", "How directories are watched: inotify or polling."),
    "SciCatReachable": (
        "SciCat reachable", "True when the last request to SciCat got an answer."),
    "SciCatUrl": (
        "SciCat URL", "The SciCat API root (scicat_url)."),
    "ReingestProgress": (
        "Re-ingestion progress",
        "'n/total list-file' while a Reingest of a whole beamtime runs; empty "
        "otherwise."),
    "StatusReport": (
        "Status report (JSON)",
        "Everything above as one JSON object, for scripts (keys of the core "
        "status snapshot plus state, status, scan_dir, config_file, fault, warning)."),
}


def described(name: str) -> Dict[str, str]:
    """The ``label`` and ``doc`` keyword arguments of ``attribute(...)`` for ``name``."""
    label, doc = ATTRIBUTE_DOCS[name]
    return {"label": label, "doc": doc}
