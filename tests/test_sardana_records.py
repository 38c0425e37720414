"""Record logic of the Sardana macros (``sardana_macros.scicat_records``) on real files."""

from __future__ import annotations

import itertools
import logging
import os
import socket

import pytest

from sardana_macros import macro_path
from sardana_macros import scicat_records as rec

logger = logging.getLogger(__name__)

BT_FILE = "beamtime-metadata-11019876.json"


def _clock(start: float = 1718001000.0, step: float = 0.25):
    counter = itertools.count()
    return lambda: start + step * next(counter)


@pytest.fixture
def beamtime(tmp_path):
    """``<tmp>/current`` with a beamtime file and ``raw/calib``."""
    root = tmp_path / "current"
    (root / "raw" / "calib").mkdir(parents=True)
    (root / BT_FILE).write_text("{}")
    return root


def _env(beamtime, **extra):
    env = {"ScanDir": str(beamtime / "raw" / "calib"), "BeamtimeFilePath": str(beamtime)}
    env.update(extra)
    return env


def test_macro_path_holds_the_library():
    assert os.path.isfile(os.path.join(macro_path(), "scingestor_macros.py"))


@pytest.mark.parametrize("name", ["", "  ", "a b", "a:b", "a/b", "..", "__command__", "a\tb"])
def test_check_name_rejects(name):
    with pytest.raises(rec.RecordError):
        rec.check_name(name)


def test_check_name_strips():
    assert rec.check_name(" ptycho1 ") == "ptycho1"


def test_scan_dir_required():
    with pytest.raises(rec.RecordError, match="ScanDir is not set"):
        rec.scan_dir({})
    with pytest.raises(rec.RecordError, match="ScanDir is not set"):
        rec.scan_dir({"ScanDir": ""})


def test_scan_dir_is_normalised(beamtime, monkeypatch):
    monkeypatch.chdir(beamtime)
    assert rec.scan_dir({"ScanDir": "raw/calib/"}) == str(beamtime / "raw" / "calib")
    assert rec.record_dir({"ScanDir": "raw/calib/", "ScanNames": False}) == str(beamtime / "raw")


def test_beamtime_file_walking_up(beamtime):
    path, bid = rec.find_beamtime_file(str(beamtime / "raw" / "calib"), "")
    assert (path, bid) == (str(beamtime / BT_FILE), "11019876")


def test_beamtime_file_through_symlink(beamtime, tmp_path):
    link = tmp_path / "elsewhere"
    link.mkdir()
    (link / "calib").symlink_to(beamtime / "raw" / "calib")
    _, bid = rec.find_beamtime_file(str(link / "calib"), "/nonexistent")
    assert bid == "11019876"


def test_beamtime_file_missing_is_an_error(tmp_path):
    (tmp_path / "scans").mkdir()
    with pytest.raises(rec.BeamtimeFileError, match="no beamtime file"):
        rec.find_beamtime_file(str(tmp_path / "scans"), str(tmp_path))


def test_several_beamtime_files_are_an_error(beamtime):
    (beamtime / "beamtime-metadata-22222222.json").write_text("{}")
    with pytest.raises(rec.BeamtimeFileError, match="several beamtime files"):
        rec.find_beamtime_file(str(beamtime / "raw"), "")


def test_nearest_beamtime_file_wins(beamtime):
    (beamtime / "raw" / "beamtime-metadata-33333333.json").write_text("{}")
    assert rec.find_beamtime_file(str(beamtime / "raw" / "calib"))[1] == "33333333"


def test_custom_beamtime_prefix_and_ext(tmp_path):
    (tmp_path / "bt-42.meta").write_text("{}")
    env = {"ScanDir": str(tmp_path), "BeamtimeFilePrefix": "bt-", "BeamtimeFileExt": ".meta"}
    assert rec.list_file(env) == str(tmp_path / "scicat-datasets-42.lst")


def test_list_file_names(beamtime):
    calib = beamtime / "raw" / "calib"
    assert rec.list_file(_env(beamtime)) == str(calib / "scicat-datasets-11019876.lst")
    host = socket.gethostname()
    assert rec.list_file(_env(beamtime, SciCatDatasetListFileLocal=True)) == str(
        calib / f"scicat-datasets-{host}-11019876.lst")
    assert rec.list_file(_env(beamtime, SciCatDatasetListFileLocal="haspp99")) == str(
        calib / "scicat-datasets-haspp99-11019876.lst")
    assert rec.list_file(_env(beamtime, SciCatDatasetListFileLocal="False")) == str(
        calib / "scicat-datasets-11019876.lst")
    assert rec.list_file(_env(beamtime, SciCatDatasetListFilePrefix="my-",
                              SciCatDatasetListFileExt=".txt")) == str(calib / "my-11019876.txt")
    assert rec.list_file(_env(beamtime, ScanNames=False)) == str(
        beamtime / "raw" / "scicat-datasets-11019876.lst")


def test_update_replays_the_list_and_reports_before_and_after(tmp_path):
    path = str(tmp_path / "list.lst")
    seen = []

    def decide(current):
        seen.append(current)
        return ["__command__ start m1"]

    done = rec.update(path, decide)
    assert (done.lines, done.before, done.after, seen) == (["__command__ start m1"], "", "m1", [""])
    done = rec.update(path, lambda current: [f"scan_for_{current}", "__command__ stop"])
    assert (done.before, done.after) == ("m1", "")
    assert rec.current_measurement(path) == ""
    with open(path, encoding="utf-8") as handle:
        assert handle.read() == "\n__command__ start m1\nscan_for_m1\n__command__ stop"


def test_update_errors_are_record_errors(tmp_path):
    (tmp_path / "list.lst").mkdir()  # unreadable and unwritable even for root
    with pytest.raises(rec.ListFileError, match="cannot open list file"):
        rec.update(str(tmp_path / "list.lst"), lambda current: ["x"])
    with pytest.raises(rec.ListFileError, match="cannot open list file"):
        rec.update(str(tmp_path / "missing" / "list.lst"), lambda current: ["x"])
    with pytest.raises(rec.RecordError, match="line break"):
        rec.update(str(tmp_path / "other.lst"), lambda current: ["a\nb"])
    assert not (tmp_path / "other.lst").exists()


def test_mirror_is_written_from_the_list_value():
    assert rec.mirror({"SciCatMeasurements": ""}, "/a", "m1") == {"/a": "m1"}
    table = rec.mirror({"SciCatMeasurements": {"/a/b/": "m1", "/c": "", "/d/../e": "m2"}},
                       "/e/", "")
    assert table == {"/a/b": "m1"}


@pytest.mark.parametrize("scan_file, expected", [
    (["ctrace.fio", "ctrace.nxs"], ("ctrace", True)),
    ("ctrace.fio", ("ctrace", False)),
    (["a.dat", "b.fio"], ("b", False)),
    (["a.dat"], ("a", False)),
    (["x.h5", "x.fio"], ("x", True)),
    ([], ("", False)),
    (None, ("", False)),
])
def test_scan_base(scan_file, expected):
    assert rec.scan_base(scan_file) == expected


def _scan_env(beamtime, **extra):
    values = {"ScanFile": ["ctrace.fio", "ctrace.nxs"], "ScanID": 41,
              "AppendSciCatDataset": True}
    values.update(extra)
    return _env(beamtime, **values)


def test_scan_line_forms(beamtime):
    now = _clock()
    assert rec.scan_line(_scan_env(beamtime)).line == "ctrace_00041"
    assert rec.scan_line(_scan_env(beamtime), reingest=True, now=now).line == \
        "ctrace_00041:1718001000.0"
    env = _scan_env(beamtime, NeXusSkipAcquisitionModes="INIT,FINAL")
    assert rec.scan_line(env, now=now).line == "ctrace_00041:1718001000.25"
    env = _scan_env(beamtime, NeXusSkipAcquisitionModes=["FINAL"])
    assert rec.scan_line(env).line == "ctrace_00041"
    entry = rec.scan_line(_scan_env(beamtime), appendentry=True, entryname="entry")
    assert entry.line == "ctrace::/entry_00041;ctrace_00041"
    env = _scan_env(beamtime, ScanFile="tomo_{ScanID:04d}_raw.nxs", ScanID=12)
    line = rec.scan_line(env)
    assert (line.line, line.group) == ("tomo_0012_raw", "tomo")
    env = _scan_env(beamtime, ScanFile="pct_%05d.h5", ScanID=3)
    line = rec.scan_line(env)
    assert (line.line, line.group) == ("pct_00003", "pct")
    env = _scan_env(beamtime, ScanFile="run_%05d.fio", ScanID=3)
    assert rec.scan_line(env).line == "run_%05d_00003"


def test_scan_line_flags(beamtime):
    env = _scan_env(beamtime, AppendSciCatDataset=False)
    assert rec.scan_line(env) is None
    env = _scan_env(beamtime, AppendSciCatDataset=False, NXSAppendSciCatDataset=True)
    assert rec.scan_line(env) is None
    assert rec.scan_line(env, reingest=True).line.startswith("ctrace_00041:")
    env = _scan_env(beamtime, NXSAppendSciCatDataset=True)
    assert rec.scan_line(env) is None  # the NeXus writer lists it
    env = _scan_env(beamtime, NXSAppendSciCatDataset=True, ScanFile="ctrace.fio")
    assert rec.scan_line(env).line == "ctrace_00041"
    with pytest.raises(rec.RecordError, match="ScanID"):
        rec.scan_line(_scan_env(beamtime, ScanID=None))


def test_scan_names(beamtime):
    line = rec.scan_line(_scan_env(beamtime, ScanNames=False))
    assert (line.line, line.directory, line.dir_prefixed) == (
        "calib/ctrace_00041", str(beamtime / "raw"), True)
    line = rec.scan_line(_scan_env(beamtime, ScanNames=True))
    assert (line.line, line.directory, line.dir_prefixed) == (
        "ctrace_00041", str(beamtime / "raw"), False)


def test_plain_dataset_line_without_grouping(beamtime):
    assert rec.dataset_lines(_scan_env(beamtime)) == ["ctrace_00041"]
    assert rec.dataset_lines(_scan_env(beamtime), current="m1") == ["ctrace_00041"]


def test_auto_grouping_worked_example(beamtime):
    """docs/sardana.md "Auto grouping": scans 7, 8 of align, 9 of sampleA, then a manual mixA."""
    now = _clock()
    env = _env(beamtime, ScanFile="align.nxs", ScanID=7, AppendSciCatDataset=True,
               SciCatAutoGrouping=True)
    lines = rec.dataset_lines(env, "", now=now)
    assert lines == ["__command__ start align", "align_00007", "__command__ stop",
                     "align:1718001000.0"]
    env.update(ScanID=8)
    lines = rec.dataset_lines(env, "", now=now)
    assert lines[1] == "align_00008" and lines[3] == "align:1718001000.25"
    env.update(ScanID=9, ScanFile="sampleA.nxs")
    lines = rec.dataset_lines(env, "", now=now)
    assert lines == ["__command__ start sampleA", "sampleA_00009", "__command__ stop",
                     "sampleA:1718001000.5"]
    env.update(ScanID=10)
    lines = rec.dataset_lines(env, "mixA", now=now)
    assert lines == ["__command__ stop", "mixA:1718001000.75", "__command__ start sampleA",
                     "sampleA_00010", "__command__ stop", "sampleA:1718001001.0"]
    lines = rec.dataset_lines(env, "sampleA", now=now)
    assert lines == ["sampleA_00010", "__command__ stop", "sampleA:1718001001.25"]


def test_auto_grouping_flags(beamtime):
    base = _env(beamtime, ScanFile="sampleA.nxs", ScanID=10, AppendSciCatDataset=True,
                SciCatAutoGrouping=True)
    lines = rec.dataset_lines(dict(base, ScanNamesNoGrouping=True), "mixA")
    assert lines == ["sampleA_00010"]
    lines = rec.dataset_lines(dict(base, ScanNamesNoMetadata=True), "mixA", now=lambda: 5.0)
    assert lines == ["sampleA:5.0"]
    lines = rec.dataset_lines(dict(base, ScanNamesNoMetadata=True, ScanNamesNoGrouping=True),
                              "mixA")
    assert lines == []


def test_scan_names_prefix_triggers_grouping(beamtime):
    env = _env(beamtime, ScanFile="align.fio", ScanID=2, AppendSciCatDataset=True,
               ScanNames=False)
    lines = rec.dataset_lines(env, now=lambda: 2.0)
    assert lines == ["__command__ start align", "calib/align_00002", "__command__ stop",
                     "align:2.0"]
    assert rec.list_file(env) == str(beamtime / "raw" / "scicat-datasets-11019876.lst")


def test_a_scan_file_name_that_cannot_be_listed_is_an_error(beamtime):
    with pytest.raises(rec.RecordError, match="white space"):
        rec.scan_line(_scan_env(beamtime, ScanFile="my scan.fio"))
