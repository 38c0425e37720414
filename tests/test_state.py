"""The ingested list: format, 'already ingested' rules, atomic writes, locking."""

from __future__ import annotations

import multiprocessing
import os

from scingestor.state import IngestedList, Stamps, atomic_write, parse_record


def test_record_format_round_trip(tmp_path):
    path = tmp_path / "var" / "scicat-ingested-datasets-1.lst"
    ingested = IngestedList(str(path))
    ingested.refresh()
    ingested.record("cal_00002 pilatus1", Stamps(1718000205.117, 1718000205.9402, 0))
    ingested.record("cal_00003", Stamps(0, 0, 0))
    assert path.read_text() == (
        "cal_00002 pilatus1 1718000205.117 1718000205.9402 0\ncal_00003 0 0 0\n"
    )
    again = IngestedList(str(path))
    again.refresh()
    assert again.is_ingested("cal_00002 pilatus1")
    assert not again.is_ingested("cal_00003")
    assert again.reference("cal_00002 pilatus1") == Stamps(1718000205.117, 1718000205.9402, 0)


def test_legacy_short_lines_count_as_ingested(tmp_path):
    path = tmp_path / "i.lst"
    path.write_text("scan_1\nscan_2 extra\n")
    ingested = IngestedList(str(path))
    ingested.refresh()
    assert ingested.is_ingested("scan_1") and ingested.is_ingested("scan_2")


def test_failure_rules(tmp_path):
    path = tmp_path / "i.lst"
    path.write_text("a 1 1 -1\nb 1 1 0\nc 0 0 0\nd 1 0 0\n")
    retry = IngestedList(str(path))
    retry.refresh()
    assert [retry.is_ingested(k) for k in "abcd"] == [False, True, False, False]
    strict = IngestedList(str(path), retry_failed_attachment=True)
    strict.refresh()
    assert not strict.is_ingested("b")
    no_retry = IngestedList(str(path), retry_failed=False)
    no_retry.refresh()
    assert all(no_retry.is_ingested(k) for k in "abcd")


def test_later_success_wins_and_reference_is_last_complete(tmp_path):
    path = tmp_path / "i.lst"
    path.write_text("a 0 0 0\na 5.5 6.5 0\na 7.5 -1 0\n")
    ingested = IngestedList(str(path))
    ingested.refresh()
    assert ingested.is_ingested("a")
    assert ingested.reference("a") == Stamps(5.5, 6.5, 0)
    assert ingested.last_stamps("a") == Stamps(7.5, -1, 0)


def test_truncated_stamps_are_not_ingested():
    record = parse_record("scan_1 pilatus 17180 171x 0")
    assert record.key == "scan_1 pilatus" and record.stamps == Stamps(0, 0, 0)


def test_refresh_sees_changes_by_another_writer(tmp_path):
    path = tmp_path / "i.lst"
    mine = IngestedList(str(path))
    mine.refresh()
    other = IngestedList(str(path))
    other.refresh()
    other.record("x", Stamps(1.5, 1.5, 0))
    mine.refresh()
    assert mine.is_ingested("x")
    mine.record("y", Stamps(2.5, 2.5, 0))
    assert path.read_text().splitlines() == ["x 1.5 1.5 0", "y 2.5 2.5 0"]


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "d" / "f.lst"
    atomic_write(str(path), "one\n")
    atomic_write(str(path), "two\n")
    assert path.read_text() == "two\n"
    assert os.listdir(path.parent) == ["f.lst"]
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)


def _hold_lock(path, ready, release):
    ingested = IngestedList(path)
    with ingested.locked():
        ready.set()
        release.wait(10)


def test_lock_excludes_another_process(tmp_path):
    path = str(tmp_path / "i.lst")
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    child = ctx.Process(target=_hold_lock, args=(path, ready, release))
    child.start()
    try:
        assert ready.wait(10)
        import fcntl

        with open(path + ".lock", "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked_out = False
            except BlockingIOError:
                locked_out = True
        assert locked_out
    finally:
        release.set()
        child.join(10)
    mine = IngestedList(path)
    with mine.locked():
        pass
