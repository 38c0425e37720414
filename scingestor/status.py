"""The status snapshot that the daemon, the Tango device and the macros read, and its state rule.

The snapshot is made on every status change, so its size does not depend on how much is
watched: it carries counts and a ``watch_version``; the lists of watched beamtime files
and scan directories are made on demand by the service (docs/architecture.md, "Decisions").
"""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Mapping


class State(str, enum.Enum):
    """Service states; the names match Tango's DevState where one exists."""

    INIT = "INIT"
    ON = "ON"  # watching, idle
    RUNNING = "RUNNING"  # ingesting, or entries waiting
    ALARM = "ALARM"  # SciCat unreachable, or failures waiting for a retry
    FAULT = "FAULT"  # cannot work (bad configuration, nothing watchable)
    OFF = "OFF"  # stopped


@dataclass(frozen=True)
class StatusSnapshot:
    """Everything an adapter shows, taken at one instant."""

    state: State = State.INIT
    status: str = "Not started."
    scicat_url: str = ""
    scicat_web_url: str = ""  # the catalogue's web address (scicat_web_url), '' when unset
    scicat_reachable: bool = False
    watch_mode: str = ""
    watched_beamtime_count: int = 0  # beamtime files followed
    watched_scandir_count: int = 0  # scan directories watched
    # changes whenever the watched beamtime files or scan directories change; the lists
    # are IngestorService.watched_beamtimes() / watched_scandirs()
    watch_version: int = 0
    queue_length: int = 0
    ingested_count: int = 0
    failed_count: int = 0
    pending_retries: int = 0
    last_ingested_scan: str = ""
    last_error: str = ""
    last_error_time: float = 0.0
    current_scandir: str = ""
    current_measurements: dict[str, str] = field(default_factory=dict)
    reingest_progress: str = ""
    # what happened to the recent scans (scingestor/history.py); the versions change
    # with every new outcome / change of the failed set, so adapters push cheaply
    history_version: int = 0
    failed_version: int = 0
    failed_scan_count: int = 0
    scans_per_minute: float = 0.0
    last_success_time: float = 0.0

    @property
    def current_measurement(self) -> str:
        """Measurement of the current scan directory ('' when none is open)."""
        return self.current_measurements.get(self.current_scandir, "")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = self.state.value
        data["current_measurement"] = self.current_measurement
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


def compose_status(
    current: StatusSnapshot,
    *,
    fault: str,
    running: bool,
    scicat_problem: str,
    pending: int,
    queue: int,
    busy: bool,
    reachable: bool,
    watch_mode: str,
    beamtime_count: int,
    scandir_count: int,
    watch_version: int,
    measurements: Mapping[str, str],
) -> StatusSnapshot:
    """``current`` with the state, the status sentence and the counters of the service.

    O(1) in what is watched (``measurements``, one per open measurement, is copied).

    The first that applies decides the state (docs/tango.md "States"): a fault, stopped
    (OFF), SciCat cannot be used or failed scans wait for a retry (ALARM), scans
    waiting or being ingested (RUNNING), otherwise watching and idle (ON).
    """
    if fault:
        state, text = State.FAULT, fault
    elif not running:
        state, text = State.OFF, "Stopped: not watching."
    elif scicat_problem:
        state = State.ALARM
        text = f"SciCat at {current.scicat_url} cannot be used: {scicat_problem}"
    elif pending:
        state = State.ALARM
        text = (
            f"{pending} scan(s) failed and wait for a retry; last error: {current.last_error}"
        )
    elif queue or busy:
        state, text = State.RUNNING, f"Ingesting: {queue} scan(s) waiting."
    else:
        state, text = State.ON, f"Watching {scandir_count} scan directories; idle."
    return replace(
        current,
        state=state,
        status=text,
        scicat_reachable=reachable,
        queue_length=queue,
        pending_retries=pending,
        watch_mode=watch_mode,
        watched_beamtime_count=beamtime_count,
        watched_scandir_count=scandir_count,
        watch_version=watch_version,
        current_measurements=dict(measurements),
    )
