"""What happened to my scans: the history, the failed set and retries in the core service."""

from __future__ import annotations

import pytest

from scingestor.failures import failed_lines
from scingestor.history import (
    FailedScan,
    History,
    IngestionRecord,
    dataset_url,
    result_of,
)
from scingestor.state import IngestedList, Stamps
from scingestor.status import State
from scingestor.testing.setup import wait_for

BT = "99001234"
REJECTED = {"message": ["contactEmail must be an email"]}


def record(when: float, scan: str = "s", result: str = "created") -> IngestionRecord:
    return IngestionRecord(when, "/d", "/d/list.lst", scan, scan, f"{BT}/{scan}", result,
                           1, 0, "" if result != "failed" else "refused")


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_history_is_bounded_newest_first_and_versioned() -> None:
    history = History(maxlen=200)
    assert history.records() == () and history.version == 0 and history.last_success() == 0
    for number in range(250):
        history.add(record(1000.0 + number, f"s{number}"))
    records = history.records()
    assert len(records) == 200
    assert records[0].scan == "s249" and records[-1].scan == "s50"
    assert history.version == 250
    history.add(record(2000.0, "bad", "failed"))
    assert history.version == 251 and history.records()[0].result == "failed"
    assert history.last_success() == 1249.0  # a failure is no success
    assert records[0].to_dict()["pid"] == f"{BT}/s249"


def test_rate_counts_successes_in_the_window_also_beyond_the_length() -> None:
    clock = Clock(10_000.0)
    history = History(maxlen=10, clock=clock)
    for number in range(120):  # 120 successes in the last two minutes, more than kept
        history.add(record(clock.now - 120 + number))
    history.add(record(clock.now - 1, "bad", "failed"))
    history.add(record(clock.now - 400, "old"))  # outside the 5 minute window
    assert history.rate(per_seconds=60, window=300) == pytest.approx(120 * 60 / 300)
    assert history.rate(per_seconds=60, window=60) == pytest.approx(60, abs=1)
    assert history.active(300)
    clock.now += 1000
    assert history.rate() == 0 and not history.active(300)


def test_result_and_dataset_url() -> None:
    assert result_of(True, "created", 1, 1) == "failed"
    assert [result_of(False, action, 0, 0) for action in ("created", "patched", "new_version")] \
        == ["created", "patched", "new_version"]
    assert result_of(False, "", 1, 0) == "patched"  # only the datablock was rewritten
    assert result_of(False, "unchanged", 0, 0) == result_of(False, "", 0, 0) == "unchanged"
    assert dataset_url("https://scicat.example.org/", "10.5072/99001234/scan 1") == \
        "https://scicat.example.org/datasets/10.5072%2F99001234%2Fscan%201"
    assert dataset_url("", "pid") == "" and dataset_url("https://x", "") == ""


def test_failed_lines_the_latest_record_of_a_scan_decides(tmp_path) -> None:
    path = str(tmp_path / "ingested.lst")
    writer = IngestedList(path, retry_failed=False)
    ok, failed = Stamps(10.0, 11.0, 0), Stamps(-1, 0, 0)
    for key, stamps in [("a", failed), ("a:1", ok),  # re-ingested: settled
                        ("b", failed), ("b:1", failed),  # re-ingested, failed again
                        ("c:1", failed), ("c", ok),  # the plain line went in later
                        ("d:1", ok), ("d", failed),  # a later failure counts
                        ("m::/e1;s1", failed), ("m::/e1;s1:2", ok),  # multiscan entry s1
                        ("e", failed), ("e:1", failed), ("e", ok),
                        ("f", failed), ("g", ok)]:
        writer.record(key, stamps)
    reader = IngestedList(path, retry_failed=False)  # what a restarted service reads
    reader.refresh()
    assert failed_lines(reader.records) == ["b:1", "d", "f"]
    writer.compact()  # a compacted list gives the same answer
    reader = IngestedList(path, retry_failed=False)
    reader.refresh()
    assert failed_lines(reader.records) == ["b:1", "d", "f"]


def test_burst_with_one_rejected_scan_history_failed_set_and_retry(
        beamtime_factory, scicat_server, service_factory):
    f = beamtime_factory
    names = [f"scan_{number:05d}" for number in range(1, 5)]
    for name in names:
        f.write_nexus_scan(name)
    # the first dataset POST is refused: scan_00001 (the list is processed in order)
    scicat_server.faults.fail_next(1, status=400, body=REJECTED, method="POST",
                                   path=r"datasets$")
    service = service_factory(start=False, retry_backoff_initial=600, retry_backoff_max=600)
    events = []
    service.subscribe(events.append)
    f.append_list(None, *names)
    service.start()
    wait_for(lambda: len(service.history()) == 4, timeout=60)
    history = service.history()
    assert [item.scan for item in history] == names[::-1]  # newest first
    assert [item.result for item in history] == ["created"] * 3 + ["failed"]
    failed = history[-1]
    assert "contactEmail must be an email" in failed.message and failed.pid == ""
    assert all(item.pid == f"{BT}/{item.scan}" and item.datablocks == 1 and not item.message
               for item in history[:3])
    assert all(item.scandir == f.scandir and item.list_path == f.list_path()
               for item in history)
    (scan,) = service.failed_scans()
    assert isinstance(scan, FailedScan)
    assert (scan.scan, scan.line, scan.scandir) == ("scan_00001", "scan_00001", f.scandir)
    assert "contactEmail" in scan.message and scan.retry_at > failed.time + 500
    wait_for(lambda: service.status().state is State.ALARM)
    status = service.status()
    assert status.failed_scan_count == 1 and status.pending_retries == 1
    assert status.scans_per_minute == pytest.approx(3 / 5)
    assert status.last_success_time == history[0].time
    assert status.history_version >= 4 and status.failed_version >= 1
    assert scicat_server.dataset(f"{BT}/scan_00001") is None
    assert service.retry_failed("scan_00001", f.scandir) == 1
    wait_for(lambda: scicat_server.dataset(f"{BT}/scan_00001") is not None, timeout=30)
    wait_for(lambda: service.failed_scans() == () and service.status().state is State.ON)
    assert service.history()[0].scan == "scan_00001"
    assert service.history()[0].result == "created"
    assert service.retry_failed() == 0
    assert any(event.failed_scan_count == 1 for event in events)
    assert events[-1].failed_scan_count == 0


def test_failed_scans_after_a_restart_come_from_the_ingested_list(
        beamtime_factory, scicat_server, service_factory):
    f = beamtime_factory
    f.write_nexus_scan("scan_00001")
    f.write_nexus_scan("scan_00002")
    scicat_server.faults.fail_next(1, status=400, body=REJECTED, method="POST",
                                   path=r"datasets$")
    f.append_list(None, "scan_00001", "scan_00002")
    first = service_factory(retry_failed_dataset_ingestion=False)
    wait_for(lambda: len(first.history()) == 2, timeout=60)
    assert [scan.retry_at for scan in first.failed_scans()] == [0.0]  # no automatic retry
    first.stop()
    assert any(line.startswith("scan_00001 -1") for line in f.read_ingested())
    second = service_factory(retry_failed_dataset_ingestion=False)
    wait_for(lambda: len(second.failed_scans()) == 1)
    assert second.history() == ()  # the history is not state
    (scan,) = second.failed_scans()
    assert (scan.scan, scan.line, scan.retry_at) == ("scan_00001", "scan_00001", 0.0)
    assert "recorded as failed" in scan.message
    wait_for(lambda: second.status().failed_scan_count == 1)
    wait_for(lambda: second.status().state is State.ON)  # no automatic retry waits
    assert second.status().pending_retries == 0
    with pytest.raises(Exception, match="not a failed scan"):
        second.retry_failed("scan_00002")
    assert second.retry_failed() == 1  # not retried automatically: a re-ingest line
    wait_for(lambda: scicat_server.dataset(f"{BT}/scan_00001") is not None, timeout=30)
    wait_for(lambda: second.history() and second.history()[0].result == "created")
    with open(f.list_path(), encoding="utf-8") as handle:
        assert handle.read().split("\n")[-1].startswith("scan_00001:")


def test_retry_of_a_final_failure_in_a_running_service(
        beamtime_factory, scicat_server, service_factory):
    f = beamtime_factory
    f.write_nexus_scan("scan_00001")
    scicat_server.faults.fail_next(1, status=400, body=REJECTED, method="POST",
                                   path=r"datasets$")
    f.append_list(None, "scan_00001")
    service = service_factory(retry_failed_dataset_ingestion=False)
    wait_for(lambda: len(service.failed_scans()) == 1, timeout=60)
    assert service.failed_scans()[0].retry_at == 0.0  # final: no automatic retry
    assert service.retry_failed("scan_00001") == 1
    wait_for(lambda: scicat_server.dataset(f"{BT}/scan_00001") is not None, timeout=30)
    wait_for(lambda: service.failed_scans() == (), timeout=30)


def test_a_settled_failure_stays_settled_after_a_restart(
        beamtime_factory, scicat_server, service_factory):
    """Final failures, RetryFailed: the scan re-ingested is not failed after a restart, the
    scan whose re-ingestion failed too still is (with its re-ingest line)."""
    f = beamtime_factory
    first = service_factory(retry_failed_dataset_ingestion=False)
    for number, name in enumerate(("scan_00001", "scan_00002"), start=1):
        f.write_nexus_scan(name)
        scicat_server.faults.fail_next(1, status=400, body=REJECTED, method="POST",
                                       path=r"datasets$")
        f.append_list(None, name)
        wait_for(lambda number=number: len(first.failed_scans()) == number, timeout=60)
    assert first.retry_failed("scan_00001") == 1
    wait_for(lambda: scicat_server.dataset(f"{BT}/scan_00001") is not None, timeout=30)
    wait_for(lambda: [scan.scan for scan in first.failed_scans()] == ["scan_00002"])
    scicat_server.faults.fail_next(1, status=400, body=REJECTED, method="POST",
                                   path=r"datasets$")
    assert first.retry_failed("scan_00002") == 1
    wait_for(lambda: first.history()[0].line.startswith("scan_00002:"), timeout=30)
    assert first.history()[0].result == "failed"
    (scan,) = first.failed_scans()  # the re-ingest line's failure replaces the first one
    assert scan.scan == "scan_00002" and scan.line == first.history()[0].line
    assert "contactEmail" in scan.message and scan.retry_at == 0.0
    first.stop()
    failed_twice = scan.line
    stamps = {line.rsplit(" ", 3)[0]: line.rsplit(" ", 3)[1:] for line in f.read_ingested()}
    assert stamps["scan_00001"][0] == stamps["scan_00002"][0] == stamps[failed_twice][0] == "-1"
    (settled,) = [line for line in stamps if line.startswith("scan_00001:")]
    assert float(stamps[settled][0]) > 0  # the plain line's latest record is still -1

    second = service_factory(retry_failed_dataset_ingestion=False)
    wait_for(lambda: len(second.failed_scans()) >= 1)
    assert second.history() == ()
    (scan,) = second.failed_scans()
    assert (scan.scan, scan.line, scan.retry_at) == ("scan_00002", failed_twice, 0.0)
    wait_for(lambda: second.status().failed_scan_count == 1)
    with pytest.raises(Exception, match="not a failed scan"):
        second.retry_failed("scan_00001")
    second.stop()

    f.append_list(None, "scan_00002:1")  # scan_00002 goes in at last: settled as well
    third = service_factory(retry_failed_dataset_ingestion=False)
    wait_for(lambda: scicat_server.dataset(f"{BT}/scan_00002") is not None, timeout=30)
    wait_for(lambda: third.failed_scans() == (), timeout=30)
    f.write_nexus_scan("scan_00003")  # a final failure that stays: shows the set was derived
    scicat_server.faults.fail_next(1, status=400, body=REJECTED, method="POST",
                                   path=r"datasets$")
    f.append_list(None, "scan_00003")
    wait_for(lambda: len(third.failed_scans()) == 1, timeout=60)
    third.stop()
    fourth = service_factory(retry_failed_dataset_ingestion=False)
    wait_for(lambda: len(fourth.failed_scans()) >= 1)
    assert [(scan.scan, scan.line) for scan in fourth.failed_scans()] == [
        ("scan_00003", "scan_00003")]


def test_failed_scans_waiting_for_a_retry_after_a_restart(
        beamtime_factory, scicat_server, service_factory):
    """With retries on, a recorded failure is tried again at once after a restart."""
    f = beamtime_factory
    f.write_nexus_scan("scan_00001")
    scicat_server.faults.fail_next(1, status=400, body=REJECTED, method="POST",
                                   path=r"datasets$")
    f.append_list(None, "scan_00001")
    first = service_factory(retry_backoff_initial=600, retry_backoff_max=600)
    wait_for(lambda: len(first.failed_scans()) == 1, timeout=60)
    first.stop()
    scicat_server.faults.fail_next(1, status=400, body=REJECTED, method="POST",
                                   path=r"datasets$")
    second = service_factory(retry_backoff_initial=600, retry_backoff_max=600)
    wait_for(lambda: len(second.history()) == 1, timeout=60)
    (scan,) = second.failed_scans()
    assert "contactEmail" in scan.message and scan.retry_at > 0
    assert second.status().pending_retries == 1
