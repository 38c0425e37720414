"""The periodic jobs of discovery: full reconciliation, list check, cheap poll.

``recheck_beamtime_file_interval`` drives the full reconciliation,
``recheck_dataset_list_interval`` the list check; the cheap poll runs only in
polling mode, every :func:`poll_period` seconds (README, "Running the daemon").
"""

from __future__ import annotations

import enum
import logging
from typing import Optional

from ..config import IngestorConfig

logger = logging.getLogger(__name__)

_MAX_POLL_PERIOD = 2.0
_MIN_POLL_PERIOD = 0.05


class Job(enum.Enum):
    """A periodic job, cheapest last."""

    FULL = "full"  # re-list every directory
    POLL = "poll"  # re-list directories whose stamp changed
    LISTS = "lists"  # stat every known list file


def poll_period(cfg: IngestorConfig) -> float:
    """Seconds between cheap reconciliations when inotify is not used."""
    intervals = [
        float(value)
        for value in (cfg.recheck_beamtime_file_interval, cfg.recheck_dataset_list_interval)
        if value and value > 0
    ]
    return max(_MIN_POLL_PERIOD, min([_MAX_POLL_PERIOD, *intervals]))


def most_thorough(jobs: set[Job]) -> Optional[Job]:
    """The job of ``jobs`` that covers the others (a full reconciliation covers all)."""
    for job in Job:
        if job in jobs:
            return job
    return None


class Schedule:
    """Deadlines (``time.monotonic()`` values) of the periodic jobs."""

    def __init__(self, cfg: IngestorConfig, polling: bool, now: float) -> None:
        self._cfg = cfg
        self._polling = polling
        self._deadlines: dict[Job, float] = {}
        self._plan(now, None)

    def interval(self, job: Job) -> float:
        """Seconds between two runs of ``job``; 0 when it does not run."""
        if job is Job.FULL:
            value = self._cfg.recheck_beamtime_file_interval
        elif job is Job.LISTS:
            value = self._cfg.recheck_dataset_list_interval
        else:
            value = poll_period(self._cfg) if self._polling else 0
        return float(value) if value and value > 0 else 0.0

    def next_deadline(self) -> Optional[float]:
        """When the next job is due, ``None`` when no job runs."""
        return min(self._deadlines.values()) if self._deadlines else None

    def due(self, now: float) -> set[Job]:
        """The jobs whose time has come at ``now``."""
        return {job for job, when in self._deadlines.items() if when <= now}

    def done(self, now: float, jobs: set[Job]) -> None:
        """Plan again after the ``jobs`` that were due ran (finishing at ``now``)."""
        self._plan(now, jobs)

    def switch_to_polling(self, now: float) -> None:
        """Add the cheap poll (inotify cannot be used any more)."""
        self._polling = True
        self._plan(now, None)

    def _plan(self, now: float, done: Optional[set[Job]]) -> None:
        for job in Job:
            interval = self.interval(job)
            if not interval:
                self._deadlines.pop(job, None)
            elif done is None or job in done or job not in self._deadlines:
                self._deadlines[job] = now + interval
        if done and Job.FULL in done:
            # a full reconciliation also covers the cheaper jobs
            for job in (Job.POLL, Job.LISTS):
                if job in self._deadlines:
                    self._deadlines[job] = now + self.interval(job)
