"""Labels, descriptions, units, formats and display levels of the ``SciCatIngestor`` device.

This is what Jive, Astor, Taurus and ``DeviceProxy.get_attribute_config`` show;
docs/tango.md "Device properties" and "Attributes" say the same for readers. The
device module declares the properties and attributes with these texts. Display
level OPERATOR: what a beamline scientist needs; EXPERT: the rest (Jive and the
Taurus generic panels hide it unless asked).
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

from tango import DispLevel

#: Device property name -> its description.
PROPERTY_DOCS: Dict[str, str] = {
    "ConfigFile": "Path of the scingestor YAML configuration (the daemon's -c file), e.g. "
                  "/home/p00user/.scingestor.yaml; '~' is expanded. String, required: empty "
                  "puts the device in FAULT. Applied by Init or ReloadConfiguration.",
    "AutoStart": "Start watching when the device initialises. Boolean, default true; false "
                 "leaves the device OFF until the Start command.",
    "LogLevel": "Python log level of the ingestor: debug, info, warning, error or critical. "
                "String, default info; any other value puts the device in FAULT.",
    "LogFile": "Write the ingestor log (with timestamps) to this file path, rotated at "
               "start-up with 5 backups. String, default empty: stderr (Starter: "
               "/var/tmp/ds.log/SciCatIngestor_<instance>.log).",
}

_OP, _EX = DispLevel.OPERATOR, DispLevel.EXPERT

#: Attribute name -> (label, description, unit, format, display level).
ATTRIBUTES: Dict[str, Tuple[str, str, str, str, DispLevel]] = {
    "CurrentMeasurement": (
        "Current measurement",
        "Measurement open in the ScanDir directory (or, when ScanDir is empty, in "
        "the most recently active scan directory); empty when none is open.", "", "%s", _OP),
    "CurrentMeasurements": (
        "Current measurements",
        "Every scan directory with an open measurement, one 'scandir: name' "
        "string each, sorted by directory.", "", "%s", _EX),
    "ScanDir": (
        "Scan directory",
        "Scan directory the commands without a directory argument act on (absolute "
        "path, real or core form); empty = the most recently active one.", "", "%s", _OP),
    "CurrentScanDir": (
        "Current scan directory",
        "The most recently active scan directory (where the last list change was).",
        "", "%s", _OP),
    "QueueLength": (
        "Queue length", "Entries of the dataset lists waiting to be ingested.",
        "scans", "%d", _OP),
    "LastError": (
        "Last error", "The last ingestion or SciCat error (empty when none happened).",
        "", "%s", _OP),
    "LastErrorTime": (
        "Last error time",
        "When LastError happened, ISO 8601 local time with UTC offset "
        "(e.g. 2024-03-05T10:00:00+01:00); empty when none happened.", "", "%s", _OP),
    "IngestedCount": (
        "Ingested datasets", "Datasets ingested since the service started.",
        "datasets", "%d", _OP),
    "FailedCount": (
        "Failed ingestions", "Failed ingestion attempts since the service started.",
        "datasets", "%d", _OP),
    "PendingRetries": (
        "Pending retries", "Failed scans waiting for an automatic retry.", "scans", "%d", _OP),
    "LastIngestedScan": (
        "Last ingested scan", "Name of the scan (or measurement) ingested last.",
        "", "%s", _OP),
    "WatchedBeamtimes": (
        "Watched beamtimes", "The beamtime metadata files being watched.", "", "%s", _EX),
    "WatchedScanDirs": (
        "Watched scan directory list",
        "The scan directories being watched, sorted; made when read (no events).",
        "", "%s", _EX),
    "WatchedScanDirCount": (
        "Watched scan directories", "Number of scan directories being watched.",
        "dirs", "%d", _EX),
    "WatchMode": (
        "Watch mode", "How directories are watched: inotify or polling.", "", "%s", _EX),
    "SciCatReachable": (
        "SciCat reachable", "True when the last request to SciCat got an answer.",
        "", "%s", _OP),
    "SciCatUrl": (
        "SciCat URL", "The SciCat API root (scicat_url).", "", "%s", _EX),
    "SciCatWebUrl": (
        "SciCat web address",
        "The catalogue's web address (scicat_web_url); a dataset's page is "
        "<SciCatWebUrl>/datasets/<URL-encoded pid>. Empty: not configured.", "", "%s", _OP),
    "ReingestProgress": (
        "Re-ingestion progress",
        "'n/total list-file' while a Reingest of a whole beamtime runs; empty "
        "otherwise.", "", "%s", _OP),
    "RecentIngestions": (
        "Recent ingestions (JSON)",
        "The last outcomes (at most 200), newest first, as a JSON list of objects: time "
        "(epoch s), scandir, list_path, scan, line, pid, result (created, patched, "
        "new_version, unchanged or failed), datablocks, thumbnails, message (the server's "
        "message on failure) and url (the dataset page, when SciCatWebUrl is set). Emptied "
        "when the server restarts.", "", "%s", _OP),
    "FailedScans": (
        "Failed scans (JSON)",
        "The scans that failed, as a JSON list of objects: scandir, list_path, scan, line, "
        "message, retry_at (epoch s of the automatic retry; 0: none). RetryFailed runs "
        "them now.", "", "%s", _OP),
    "ScansPerMinute": (
        "Ingestion rate",
        "Scans ingested successfully per minute, over the last 5 minutes.",
        "1/min", "%.1f", _OP),
    "LastIngestionTime": (
        "Last ingestion time",
        "When the last scan was ingested successfully, in epoch seconds (UTC); 0 when "
        "none since the server started.", "s", "%.0f", _OP),
    "StatusReport": (
        "Status report (JSON)",
        "Everything above as one JSON object, for scripts (keys of the core "
        "status snapshot plus state, status, scan_dir, config_file, fault, warning).",
        "", "%s", _EX),
}


def described(name: str) -> Dict[str, Any]:
    """The ``label``, ``doc``, ``unit``, ``format`` and ``display_level`` of ``attribute(...)``."""
    label, doc, unit, fmt, level = ATTRIBUTES[name]
    return {"label": label, "doc": doc, "unit": unit, "format": fmt, "display_level": level}
