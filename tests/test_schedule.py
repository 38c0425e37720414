"""The periodic jobs of discovery (scingestor/watch/schedule.py) alone."""

from __future__ import annotations

from typing import Any

import pytest

from scingestor.config import config_from_mapping
from scingestor.watch.schedule import Job, Schedule, most_thorough, poll_period


def make_config(full: float, lists: float) -> Any:
    return config_from_mapping({"recheck_beamtime_file_interval": full,
                                "recheck_dataset_list_interval": lists})


@pytest.mark.parametrize("full, lists, period", [
    (1000, 1000, 2.0), (0.3, 1000, 0.3), (1000, 0.1, 0.1), (0, 0, 2.0), (0.01, 0, 0.05),
])
def test_poll_period(full, lists, period) -> None:
    assert poll_period(make_config(full, lists)) == pytest.approx(period)


def test_inotify_mode_has_no_poll_and_jobs_come_due_in_order() -> None:
    schedule = Schedule(make_config(10, 3), polling=False, now=100.0)
    assert schedule.interval(Job.POLL) == 0
    assert schedule.next_deadline() == 103.0
    assert schedule.due(102.9) == set()
    assert schedule.due(103.0) == {Job.LISTS}
    schedule.done(103.5, {Job.LISTS})
    assert schedule.next_deadline() == 106.5
    assert schedule.due(110.0) == {Job.LISTS, Job.FULL}


def test_a_full_reconciliation_restarts_the_cheaper_jobs() -> None:
    schedule = Schedule(make_config(10, 3), polling=True, now=0.0)
    assert schedule.interval(Job.POLL) == 2.0
    due = schedule.due(10.0)
    assert due == {Job.FULL, Job.POLL, Job.LISTS}
    assert most_thorough(due) is Job.FULL
    schedule.done(11.0, due)
    assert schedule.next_deadline() == 13.0
    assert schedule.due(13.0) == {Job.POLL}
    assert most_thorough({Job.LISTS, Job.POLL}) is Job.POLL
    assert most_thorough(set()) is None


def test_disabled_jobs_and_switch_to_polling() -> None:
    schedule = Schedule(make_config(0, 0), polling=False, now=0.0)
    assert schedule.next_deadline() is None
    schedule.switch_to_polling(5.0)
    assert schedule.next_deadline() == 7.0
    assert schedule.due(7.0) == {Job.POLL}
