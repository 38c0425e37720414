"""The dataset list protocol (scingestor.listproto): line forms, names, records, appends."""

from __future__ import annotations

import pytest

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
    assert [e.scanname for e in entries][0::2] == ["good_00001", "good_00003"]
    assert any(":3: undecodable" in record.getMessage() for record in caplog.records)
