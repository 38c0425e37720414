"""The ingested list: format, 'already ingested' rules, appends, compaction, locking."""

from __future__ import annotations

import logging
import multiprocessing
import os
import random
import signal

import pytest

from scingestor.state import IngestedList, Record, Stamps, atomic_write, parse_record


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


# -- append-only writing, torn lines, compaction, other writers (README "What we changed") --
def _lines(path):
    return path.read_text().splitlines()


def test_records_are_appended_to_the_same_file(tmp_path):
    path = tmp_path / "i.lst"
    ingested = IngestedList(str(path))
    ingested.refresh()
    ingested.record("a", Stamps(1.5, 1.5, 0))
    inode = path.stat().st_ino
    read = ingested.bytes_read
    for key in "bcd":
        ingested.record(key, Stamps(2.5, 2.5, 0))
    assert path.stat().st_ino == inode  # appended, not replaced
    assert ingested.bytes_read == read  # our own appends are not read back
    assert _lines(path) == ["a 1.5 1.5 0", "b 2.5 2.5 0", "c 2.5 2.5 0", "d 2.5 2.5 0"]


@pytest.mark.parametrize("torn", ["b 1.5 2.5", "b 1.5 2.5 0", "b", "b 1.5 2."])
def test_a_torn_last_line_is_never_a_record_and_is_cut_off(tmp_path, caplog, torn):
    path = tmp_path / "i.lst"
    path.write_text("a 1.5 1.5 0\n" + torn)
    ingested = IngestedList(str(path))
    ingested.refresh()
    assert ingested.is_ingested("a")
    assert not ingested.is_ingested("b")  # "b 1.5 2.5" would be a legacy line: done
    assert ingested.last_stamps("b") is None
    ingested.record("c", Stamps(3.5, 3.5, 0))
    assert _lines(path) == ["a 1.5 1.5 0", "c 3.5 3.5 0"]
    assert any("incomplete last line" in r.getMessage() for r in caplog.records)
    again = IngestedList(str(path))
    again.refresh()
    assert [r.key for r in again.records] == ["a", "c"]


def test_appends_of_another_process_are_read_incrementally(tmp_path):
    path = tmp_path / "i.lst"
    path.write_text("".join(f"old_{n:05d} 1.5 1.5 0\n" for n in range(5000)))
    mine = IngestedList(str(path))
    mine.refresh()
    generation, read = mine.generation, mine.bytes_read
    with open(path, "a") as handle:
        handle.write("x 2.5 2.5 0\n")
    mine.refresh()
    assert mine.is_ingested("x") and mine.generation == generation
    assert mine.bytes_read - read < 1024  # the window before the offset + the new line
    read = mine.bytes_read
    mine.refresh()  # nothing changed: not even the window is read
    assert mine.bytes_read == read


def test_a_rewrite_by_another_process_is_detected(tmp_path):
    path = tmp_path / "i.lst"
    mine = IngestedList(str(path))
    mine.refresh()
    mine.record("a", Stamps(1.5, 1.5, 0))
    mine.record("b", Stamps(1.5, 1.5, 0))
    other = IngestedList(str(path))
    other.refresh()
    other.replace_all([Record("b", Stamps(2.5, 2.5, 0)), Record("c", Stamps(3.5, 3.5, 0))])
    generation = mine.generation
    mine.refresh()
    assert mine.generation == generation + 1
    assert not mine.is_ingested("a") and mine.reference("b") == Stamps(2.5, 2.5, 0)
    # rewritten in place, same size, same inode (an editor, a careless script)
    generation = mine.generation
    text = path.read_text()
    path.write_text(text.replace("c 3.5", "d 3.5"))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10_000_000))
    mine.refresh()
    assert mine.generation == generation + 1
    assert mine.is_ingested("d") and not mine.is_ingested("c")
    # truncated
    path.write_text("")
    mine.refresh()
    assert not mine.is_ingested("d") and mine.records == ()
    # removed
    mine.record("e", Stamps(1.5, 1.5, 0))
    path.unlink()
    mine.refresh()
    assert not mine.is_ingested("e")


def test_compaction_threshold_and_content(tmp_path, caplog):
    caplog.set_level(logging.INFO, "scingestor.state")
    path = tmp_path / "i.lst"
    ingested = IngestedList(str(path), compact_min=10)
    ingested.refresh()
    for key in "abcde":
        ingested.record(key, Stamps(1.5, 1.5, 0))
    inode = path.stat().st_ino
    for number in range(9):  # 9 superseded records: below compact_min
        ingested.record("a", Stamps(2.0 + number, 2.5, 0))
    assert len(_lines(path)) == 14 and path.stat().st_ino == inode
    ingested.record("a", Stamps(20.5, 20.5, 0))  # 10 superseded > 5 live: compacted
    assert path.stat().st_ino != inode
    assert sorted(_lines(path)) == sorted(
        ["b 1.5 1.5 0", "c 1.5 1.5 0", "d 1.5 1.5 0", "e 1.5 1.5 0", "a 20.5 20.5 0"])
    assert any("compacted" in r.getMessage() for r in caplog.records)
    assert [name for name in os.listdir(tmp_path) if name.startswith(".")] == []
    ingested.record("f", Stamps(1.5, 1.5, 0))  # appended to the compacted file
    assert _lines(path)[-1] == "f 1.5 1.5 0"
    again = IngestedList(str(path))
    again.refresh()
    assert again.reference("a") == Stamps(20.5, 20.5, 0) and again.is_ingested("f")


def test_no_compaction_while_superseded_records_are_fewer_than_live_ones(tmp_path):
    path = tmp_path / "i.lst"
    ingested = IngestedList(str(path), compact_min=3)
    ingested.refresh()
    for key in range(10):
        ingested.record(f"k{key}", Stamps(1.5, 1.5, 0))
    for _ in range(9):
        ingested.record("k0", Stamps(2.5, 2.5, 0))
    assert len(_lines(path)) == 19


READERS = [dict(), dict(retry_failed=False), dict(retry_failed_attachment=True)]


def _answers(path, keys, options):
    reader = IngestedList(str(path), **options)
    reader.refresh()
    return [(reader.is_ingested(k), reader.reference(k), reader.last_stamps(k)) for k in keys]


@pytest.mark.parametrize("seed", range(20))
def test_compaction_changes_no_answer_for_any_reader(tmp_path, seed):
    rng = random.Random(seed)
    values = [0, -1, 0, 1718000000.25, 1718000001.5]
    keys = ["s1", "s2", "s3", "s1:17.5"]
    lines = []
    for _ in range(rng.randint(1, 40)):
        key = rng.choice(keys)
        if rng.random() < 0.1:
            lines.append(key + "\n")  # legacy line
        else:
            lines.append(f"{key} {' '.join(str(rng.choice(values)) for _ in range(3))}\n")
    full = tmp_path / "full.lst"
    full.write_text("".join(lines))
    compacted = tmp_path / "compacted.lst"
    compacted.write_text("".join(lines))
    writer = IngestedList(str(compacted))
    writer.refresh()
    writer.compact()
    assert len(_lines(compacted)) <= len(lines)
    for options in READERS:
        assert _answers(full, keys, options) == _answers(compacted, keys, options), options


def _compact_and_die(path, when):
    ingested = IngestedList(path, compact_min=1)
    ingested.refresh()
    real = os.replace

    def replace(src, dst):
        if when == "after":
            real(src, dst)
        os.kill(os.getpid(), signal.SIGKILL)

    os.replace = replace
    ingested.record("a", Stamps(9.5, 9.5, 0))  # the last superseded one: compaction


@pytest.mark.parametrize("when", ["before", "after"])
def test_kill_during_compaction_leaves_the_old_or_the_new_file(tmp_path, when):
    path = tmp_path / "i.lst"
    path.write_text("a 1.5 1.5 0\na 2.5 2.5 0\na 3.5 3.5 0\nb 1.5 1.5 0\n")
    child = multiprocessing.get_context("fork").Process(
        target=_compact_and_die, args=(str(path), when))
    child.start()
    child.join(30)
    assert child.exitcode == -signal.SIGKILL
    if when == "before":  # the appended record is there, the file not yet replaced
        assert _lines(path) == ["a 1.5 1.5 0", "a 2.5 2.5 0", "a 3.5 3.5 0", "b 1.5 1.5 0",
                                "a 9.5 9.5 0"]
    else:
        assert sorted(_lines(path)) == ["a 9.5 9.5 0", "b 1.5 1.5 0"]
    reader = IngestedList(str(path))
    reader.refresh()
    assert reader.reference("a") == Stamps(9.5, 9.5, 0) and reader.is_ingested("b")
