"""Attribute values of the ``SciCatIngestor`` device, taken from the service's status snapshot.

docs/tango.md "Attributes" describes each one. This module does not import PyTango:
the device (:mod:`tango_ds.SciCatIngestor`) reads and pushes what it computes.
"""

from __future__ import annotations

import datetime
import json
from typing import Any, Callable, Dict, Optional, Tuple

from scingestor.status import State, StatusSnapshot


def iso_time(stamp: float) -> str:
    """``stamp`` (epoch seconds) as local ISO 8601 with offset; '' for 0."""
    if not stamp:
        return ""
    moment = datetime.datetime.fromtimestamp(stamp).astimezone()
    return moment.isoformat(timespec="seconds")


def sentence(text: str) -> str:
    """``text`` stripped and ending in a full stop (unless empty or already ended)."""
    text = text.strip()
    return text if not text or text[-1] in ".!?" else text + "."


def measurement_lines(snapshot: StatusSnapshot) -> Tuple[str, ...]:
    """One ``'scandir: name'`` per scan directory with an open measurement, sorted."""
    return tuple(f"{scandir}: {name}"
                 for scandir, name in sorted(snapshot.current_measurements.items()))


def device_state(snapshot: Optional[StatusSnapshot], running: bool, fault: str,
                 warning: str) -> Tuple[str, str]:
    """The device's state (a ``DevState`` name) and Status sentence (docs/tango.md "States").

    ``snapshot`` is None while the device has no service; ``fault`` is the device's own
    fault (properties, configuration), ``warning`` a credential problem.
    """
    if fault:
        return "FAULT", sentence(fault)
    if snapshot is None:
        return "INIT", "Initialising."
    if snapshot.state is State.INIT and not running:
        return "OFF", "Stopped: not watching; the Start command starts watching."
    text = sentence(snapshot.status)
    if snapshot.reingest_progress:
        text += f" Re-ingesting {snapshot.reingest_progress}."
    if warning and snapshot.state is not State.FAULT:
        text += f" Warning: {sentence(warning)}"
    return snapshot.state.name, text


#: Attribute name -> value taken from the status snapshot. Every one of these has
#: change events pushed by the device; the read methods use the same table.
SNAPSHOT_VALUES: Dict[str, Callable[[StatusSnapshot], Any]] = {
    "CurrentMeasurements": measurement_lines,
    "CurrentScanDir": lambda s: s.current_scandir,
    "QueueLength": lambda s: s.queue_length,
    "LastError": lambda s: s.last_error,
    "LastErrorTime": lambda s: iso_time(s.last_error_time),
    "IngestedCount": lambda s: s.ingested_count,
    "FailedCount": lambda s: s.failed_count,
    "PendingRetries": lambda s: s.pending_retries,
    "LastIngestedScan": lambda s: s.last_ingested_scan,
    "WatchedScanDirCount": lambda s: s.watched_scandir_count,
    "WatchMode": lambda s: s.watch_mode,
    "SciCatReachable": lambda s: s.scicat_reachable,
    "SciCatUrl": lambda s: s.scicat_url,
    "ReingestProgress": lambda s: s.reingest_progress,
    "SciCatWebUrl": lambda s: s.scicat_web_url,
    "ScansPerMinute": lambda s: float(s.scans_per_minute),
    "LastIngestionTime": lambda s: float(s.last_success_time),
}
#: Attributes that also get archive events (a HDB++ archiver subscribes to these).
ARCHIVED = ("State", "QueueLength", "IngestedCount", "FailedCount", "PendingRetries",
            "LastError", "LastIngestedScan", "SciCatReachable", "CurrentMeasurement",
            "ScansPerMinute", "LastIngestionTime")
#: Longest spectrum attribute (WatchedBeamtimes, CurrentMeasurements).
SPECTRUM_LENGTH = 4096


def status_report(
    snapshot: StatusSnapshot,
    *,
    state: str,
    status: str,
    current_measurement: str,
    scan_dir: str,
    config_file: str,
    fault: str,
    warning: str,
) -> str:
    """The ``StatusReport`` JSON: the snapshot's keys plus the device's own values.

    Its size does not grow with what is watched: counts and ``watch_version``, no lists.
    """
    data = snapshot.to_dict()
    data.update(
        state=state,
        status=status,
        service_state=snapshot.state.value,
        service_status=snapshot.status,
        current_measurement=current_measurement,
        last_error_time_iso=iso_time(snapshot.last_error_time),
        scan_dir=scan_dir,
        config_file=config_file,
        fault=fault,
        warning=warning,
    )
    return json.dumps(data, sort_keys=True)
