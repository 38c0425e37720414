"""The status snapshot that the daemon, the Tango device and the macros read."""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass, field
from typing import Any


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
    scicat_reachable: bool = False
    watch_mode: str = ""
    watched_beamtimes: tuple[str, ...] = ()
    watched_scandirs: tuple[str, ...] = ()
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

    @property
    def current_measurement(self) -> str:
        """Measurement of the current scan directory ('' when none is open)."""
        return self.current_measurements.get(self.current_scandir, "")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = self.state.value
        data["current_measurement"] = self.current_measurement
        data["watched_beamtimes"] = list(self.watched_beamtimes)
        data["watched_scandirs"] = list(self.watched_scandirs)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)
