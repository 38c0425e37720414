"""The dataset list protocol (scingestor.listproto): line forms, names, records, appends."""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os

import pytest

from scingestor import listproto
from scingestor.listproto import (
    EntryKind,
    UnsafeNameError,
    check_scan_name,
    measurement_of,
    parse_entry,
    parse_text,
    read_entries,
)


def test_plain_scan():
    entry = parse_entry("cal_00012")
    assert entry.kind is EntryKind.SCAN
    assert (entry.scanname, entry.masterscanname, entry.entryname) == ("cal_00012",) * 2 + ("",)
    assert entry.datablock_tokens == ("cal_00012",)
    assert not entry.is_reingest and not entry.is_command


def test_scan_with_detector_dirs_keeps_every_token():
    entry = parse_entry("cal_00012 pilatus1  ../lambda1/")
    assert entry.kind is EntryKind.SCAN
    assert entry.datablock_tokens == ("cal_00012", "pilatus1", "../lambda1/")
    assert entry.line == "cal_00012 pilatus1  ../lambda1/"


def test_reingest_marker():
    entry = parse_entry("cal_00012:1702988846.0770347 pilatus1")
    assert entry.kind is EntryKind.REINGEST
    assert entry.scanname == "cal_00012"
    assert entry.extra_tokens == ("pilatus1",)
    assert entry.is_reingest


@pytest.mark.parametrize(
    "line, master, entryname, scan",
    [
        ("multi::/scan12;multi_00012", "multi", "scan12", "multi_00012"),
        ("multi::/scan12;multi_00012:1718.5", "multi", "scan12", "multi_00012"),
        ("multi::/scan12", "multi", "scan12", "multi"),
    ],
)
def test_multiscan(line, master, entryname, scan):
    entry = parse_entry(line)
    assert entry.kind is EntryKind.MULTISCAN
    assert (entry.masterscanname, entry.entryname, entry.scanname) == (master, entryname, scan)
    assert entry.is_reingest


def test_commands():
    assert parse_entry("__command__ start calib").kind is EntryKind.START
    assert parse_entry("__command__ start calib").measurement == "calib"
    assert parse_entry("__command__ stop").kind is EntryKind.STOP
    unknown = parse_entry("__command__ pause")
    assert unknown.kind is EntryKind.UNKNOWN_COMMAND and "pause" in unknown.reason
    nameless = parse_entry("__command__ start")
    assert nameless.kind is EntryKind.INVALID and "needs a name" in nameless.reason


@pytest.mark.parametrize(
    "line",
    [
        "../etc/passwd",
        "/abs/scan",
        "a/../../b",
        "scan\x07bell",
        "x:1 /abs/dir",
        "__command__ start ../x",
    ],
)
def test_unsafe_lines_are_invalid(line):
    entry = parse_entry(line)
    assert entry.kind is EntryKind.INVALID
    assert entry.reason


def test_scan_names_with_shell_characters_are_kept_verbatim():
    # quoting happens when commands are built; the name itself is legal
    entry = parse_entry("s1;touch${IFS}pwned")
    assert entry.kind is EntryKind.SCAN
    assert entry.scanname == "s1;touch${IFS}pwned"


def test_check_scan_name():
    check_scan_name("sub/scan_00001")
    for bad in ("", "/x", "..", "a/..", "a\nb", "a\x00b"):
        with pytest.raises(UnsafeNameError):
            check_scan_name(bad)


def test_parse_text_strips_and_numbers_lines():
    entries = parse_text("\n  s1  \n\n__command__ start m\ns2\n__command__ stop")
    assert [(e.lineno, e.line) for e in entries] == [
        (2, "s1"),
        (4, "__command__ start m"),
        (5, "s2"),
        (6, "__command__ stop"),
    ]
    assert measurement_of(entries) is None
    assert measurement_of(entries[:3]) == "m"


def test_read_entries_replaces_undecodable_bytes(tmp_path, caplog):
    path = tmp_path / "scicat-datasets-1.lst"
    path.write_bytes(b"\ngood_00001\nbad\xff\xfe_00002\ngood_00003")
    entries = read_entries(str(path))
    assert [(e.lineno, e.line) for e in entries] == [
        (2, "good_00001"), (3, "bad\ufffd\ufffd_00002"), (4, "good_00003")]
    # reported once, naming the file and the line
    assert [r.getMessage().startswith(f"{path}:3:") for r in caplog.records
            if r.levelno == logging.WARNING] == [True]


# --- THE name rule (what we write) ---------------------------------------------------------


@pytest.mark.parametrize("name", ["ptycho1", "calib.v2", "a-b_c", "s1;x", "x..y"])
def test_check_name_accepts(name):
    assert listproto.check_name(name) == name


@pytest.mark.parametrize(
    "name, why",
    [
        ("", "empty"),
        (" ptycho1", "white space"),
        ("two words", "white space"),
        ("a\tb", "white space"),
        ("bell\x07", "control characters"),
        ("del\x7f", "control characters"),
        ("a:b", "':'"),
        ("a:1.5", "':'"),
        ("a/b", "'/'"),
        ("__command__", "reserved"),
        (".", "reserved"),
        ("..", "reserved"),
    ],
)
def test_check_name_rejects(name, why):
    with pytest.raises(UnsafeNameError, match=why):
        listproto.check_name(name)


@pytest.mark.parametrize("name", ["calib/scan_00001", "a/b/c"])
def test_check_name_allows_a_sub_directory_for_scans(name):
    assert listproto.check_name(name, subdir=True) == name


@pytest.mark.parametrize("name", ["/abs/scan", "../x", "a/../../x", "a//b", "./x", "a/"])
def test_check_name_subdir_stays_inside(name):
    with pytest.raises(UnsafeNameError):
        listproto.check_name(name, subdir=True)


def test_every_name_accepted_for_writing_reads_back_as_itself():
    for name in ("ptycho1", "calib.v2", "s1;x"):
        assert parse_entry(listproto.start_record(name)).measurement == name
        assert parse_entry(listproto.reingest_record(name, lambda: 1.5)).scanname == name
        assert parse_entry(listproto.scan_record(name)).scanname == name
    entry = parse_entry(listproto.scan_record("calib/scan_00001"))
    assert (entry.kind, entry.scanname) == (EntryKind.SCAN, "calib/scan_00001")


# --- record builders -----------------------------------------------------------------------


def _clock():
    counter = itertools.count()
    return lambda: 1718000000.0 + 0.25 * next(counter)


def test_record_builders():
    now = _clock()
    assert listproto.start_record("m1") == "__command__ start m1"
    assert listproto.stop_record() == "__command__ stop"
    assert listproto.reingest_record("scan_00001", now) == "scan_00001:1718000000.0"
    assert listproto.multiscan_record("multi", "scan_12", "multi_00012") == \
        "multi::/scan_12;multi_00012"
    assert listproto.multiscan_record("multi", "scan_12", "multi_00012", now) == \
        "multi::/scan_12;multi_00012:1718000000.25"
    with pytest.raises(UnsafeNameError):
        listproto.start_record("a b")
    with pytest.raises(UnsafeNameError):
        listproto.reingest_record("", now)


def test_measurement_command_lines():
    now = _clock()
    assert listproto.start_lines(None, "m2", now) == ["__command__ start m2"]
    assert listproto.start_lines("m1", "m2", now) == [
        "__command__ stop", "m1:1718000000.0", "__command__ start m2"]
    assert listproto.start_lines("m1", "", now) == ["__command__ stop", "m1:1718000000.25"]
    assert listproto.stop_lines(None, now) == ["__command__ stop"]
    assert listproto.update_lines("m1", now) == [
        "__command__ stop", "m1:1718000000.5", "__command__ start m1"]
    assert listproto.make_lines("m1", "m2", "s_00003", now) == [
        "__command__ stop", "m1:1718000000.75", "__command__ start m2", "s_00003:1718000001.0"]


def test_closing_a_measurement_another_writer_named_badly_still_closes_it():
    assert listproto.stop_lines("a:b") == ["__command__ stop"]


def test_last_scan_skips_commands_measurements_and_invalid_lines():
    entries = parse_text("s_00001\n__command__ start m1\ns_00002 pilatus\n__command__ stop\n"
                         "m1:5.5\n/abs\n")
    assert listproto.last_scan(entries) == "s_00002"
    assert listproto.last_scan(parse_text("__command__ start m1\nm1\n")) is None


# --- durable locked append --------------------------------------------------------------


def _text(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def test_append_layout_and_lock_file(tmp_path):
    path = str(tmp_path / "list.lst")
    assert listproto.append_records(path, ["__command__ start m1"]) == ["__command__ start m1"]
    listproto.append_records(path, ["scan_00001", "__command__ stop", "m1:1.5"])
    assert _text(path) == "\n__command__ start m1\nscan_00001\n__command__ stop\nm1:1.5"
    assert os.path.exists(path + listproto.LOCK_SUFFIX)
    assert [e.line for e in read_entries(path)][-1] == "m1:1.5"


@pytest.mark.parametrize("existing", ["s_00001", "s_00001\n", "s_00001\r\n", ""])
def test_append_never_extends_the_last_line(tmp_path, existing):
    path = tmp_path / "list.lst"
    path.write_text(existing, encoding="utf-8")
    listproto.append_records(str(path), ["s_00002"])
    names = [entry.scanname for entry in read_entries(str(path))]
    assert names == (["s_00001"] if existing else []) + ["s_00002"]


@pytest.mark.parametrize("record", ["", "  ", "a\nb", "a\rb"])
def test_a_bad_record_leaves_the_file_untouched(tmp_path, record):
    path = tmp_path / "list.lst"
    with pytest.raises(listproto.ListProtocolError):
        listproto.append_records(str(path), ["ok", record])
    assert not path.exists()


def test_update_list_decides_on_the_list_and_writes_nothing_when_decide_fails(tmp_path):
    path = str(tmp_path / "list.lst")
    listproto.append_records(path, ["s_00001", "__command__ start m1"])
    seen = []

    def close(entries):
        seen.append(measurement_of(entries))
        return listproto.stop_lines(measurement_of(entries), lambda: 2.5)

    assert listproto.update_list(path, close) == ["__command__ stop", "m1:2.5"]
    assert seen == ["m1"] and listproto.current_measurement(path) == ""

    def refuse(entries):
        raise LookupError("no measurement")

    before = _text(path)
    with pytest.raises(LookupError):
        listproto.update_list(path, refuse)
    assert _text(path) == before
    assert listproto.update_list(path, lambda entries: []) == []
    assert _text(path) == before


def test_unwritable_list(tmp_path):
    (tmp_path / "list.lst").mkdir()
    with pytest.raises(listproto.ListWriteError, match="cannot open list file") as failure:
        listproto.append_records(str(tmp_path / "list.lst"), ["x"])
    assert isinstance(failure.value, OSError) and failure.value.errno is not None
    with pytest.raises(listproto.ListWriteError, match="cannot open list file"):
        listproto.append_records(str(tmp_path / "missing" / "list.lst"), ["x"])


def test_current_measurement_of_a_missing_list_is_none(tmp_path):
    assert listproto.current_measurement(str(tmp_path / "absent.lst")) == ""


WRITERS, ROUNDS = 4, 40


def _measuring_writer(path: str, tag: int) -> None:
    """Open and close a measurement around one long scan line, deciding on the list."""
    for number in range(ROUNDS):
        def decide(entries, number=number):
            if measurement_of(entries) is not None:  # another writer's measurement is open
                raise AssertionError("a decision saw a half-written measurement")
            return [listproto.start_record(f"w{tag}m{number}"),
                    f"w{tag}_{number:05d}_" + "x" * 300, listproto.stop_record()]

        listproto.update_list(path, decide)


def test_concurrent_writers_in_several_processes(tmp_path):
    path = str(tmp_path / "list.lst")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_measuring_writer, args=(path, tag)) for tag in range(WRITERS)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    assert [proc.exitcode for proc in procs] == [0] * WRITERS
    lines = _text(path).split("\n")
    assert lines[0] == ""
    body = lines[1:]
    assert len(body) == WRITERS * ROUNDS * 3
    for start, scan, stop in zip(body[0::3], body[1::3], body[2::3]):
        tag, number = scan[1:].split("_")[:2]
        assert start == f"__command__ start w{tag}m{int(number)}"
        assert scan == f"w{tag}_{number}_" + "x" * 300
        assert stop == "__command__ stop"


# --- truth values ----------------------------------------------------------------------


@pytest.mark.parametrize("value, strict, lenient", [
    (True, True, True), (False, False, False), (1, True, True), (0, False, False),
    ("True", True, True), (" yes ", True, True), ("on", True, True), ("1", True, True),
    ("False", False, False), ("NO", False, False), ("off", False, False), ("0", False, False),
    ("", None, False), ("none", None, False), (None, None, False), ("sometimes", None, True),
    (2, None, True), ([], None, False),
])
def test_truth_values(value, strict, lenient):
    assert listproto.parse_truth(value) is strict
    assert listproto.is_true(value) is lenient
