"""The tree policy (scingestor/tree.py) on plain temporary directories."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, List

import pytest

from scingestor import tree
from scingestor.beamtime import BlacklistReader, load_beamtime
from scingestor.config import config_from_mapping

BT = "99001234"


def make_config(**values: Any) -> Any:
    values.setdefault("scandir_blacklist", [])
    return config_from_mapping(values)


def write_beamtime(directory: Path, beamtime_id: str = BT, **fields: Any) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    data = {"beamtimeId": beamtime_id, "proposalId": "1", "beamline": "p00",
            "proposalType": "I", **fields}
    path = directory / f"beamtime-metadata-{beamtime_id}.json"
    path.write_text(json.dumps(data))
    return str(path)


def touch_list(directory: Path, beamtime_id: str = BT) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"scicat-datasets-{beamtime_id}.lst"
    path.write_text("scan_00001\n")
    return str(path)


def list_dirs(cfg: Any, bt: Path) -> List[str]:
    beamtime = load_beamtime(os.path.join(str(bt), f"beamtime-metadata-{BT}.json"))
    return tree.find_list_dirs(tree.ScanPolicy.for_beamtime(cfg, beamtime), str(bt))


# ------------------------------------------------------------- beamtime dirs


def test_beamtime_dirs_configured_then_base_subdirs_without_duplicates(tmp_path) -> None:
    base = tmp_path / "base"
    for name in ("b", "a", "c"):
        (base / name).mkdir(parents=True)
    (base / "file.txt").write_text("not a directory")
    os.symlink(str(tmp_path / "elsewhere"), str(base / "dangling"))
    (tmp_path / "linked").mkdir()
    os.symlink(str(tmp_path / "linked"), str(base / "link"))
    problems: List[str] = []
    cfg = make_config(beamtime_dirs=[str(tmp_path / "own"), str(base / "b"), "rel/dir"],
                      beamtime_base_dir=str(base))
    dirs = tree.beamtime_dirs(cfg, problems.append)
    assert dirs == [str(tmp_path / "own"), str(base / "b"), os.path.abspath("rel/dir"),
                    str(base / "a"), str(base / "c"), str(base / "link")]
    assert problems == []


def test_unusable_entries_and_unreadable_base_are_problems(tmp_path) -> None:
    problems: List[str] = []
    cfg = make_config(beamtime_dirs=["bad\0dir", str(tmp_path)],
                      beamtime_base_dir=str(tmp_path / "missing"))
    assert tree.beamtime_dirs(cfg, problems.append) == [str(tmp_path)]
    assert len(problems) == 2
    with pytest.raises(ValueError):
        tree.beamtime_dir_path("bad\0dir")
    assert tree.base_dir(make_config()) == ""


# ------------------------------------------------------------ beamtime files


def test_beamtime_files_by_name_regular_files_only(tmp_path) -> None:
    good = write_beamtime(tmp_path)
    (tmp_path / "beamtime-metadata-dir.json").mkdir()
    (tmp_path / "beamtime-metadata-1.txt").write_text("{}")
    (tmp_path / "other.json").write_text("{}")
    os.symlink(good, str(tmp_path / "beamtime-metadata-link.json"))
    found = tree.beamtime_files(make_config(), str(tmp_path))
    assert sorted(found) == sorted([str(tmp_path / "beamtime-metadata-link.json"), good])
    assert found[good].st_size == os.path.getsize(good)
    with pytest.raises(OSError):
        tree.beamtime_files(make_config(), str(tmp_path / "missing"))


@pytest.mark.parametrize("fields, config, excluded", [
    ({}, {}, False),
    ({"proposalType": "P"}, {}, True),
    ({"proposalType": "P"}, {"beamtime_type_blacklist": []}, False),
    ({}, {"id_blacklisted": True}, True),
    ({}, {"dir_blacklisted": True}, True),
    ({"corePath": "/core/bt"}, {"use_corepath_as_scandir": True,
                                "scandir_blacklist": ["/core/bt"]}, True),
])
def test_beamtime_excluded(tmp_path, fields, config, excluded) -> None:
    path = write_beamtime(tmp_path / "bt", **fields)
    values = dict(config)
    blacklist_file = tmp_path / "blacklist.txt"
    blacklist_file.write_text(f"{BT}\n" if values.pop("id_blacklisted", False) else "1\n")
    if values.pop("dir_blacklisted", False):
        values["scandir_blacklist"] = [str(tmp_path / "bt")]
    cfg = make_config(beamtimeid_blacklist_file=str(blacklist_file), **values)
    beamtime = load_beamtime(path)
    assert tree.beamtime_excluded(cfg, beamtime, BlacklistReader(str(blacklist_file))) is excluded


def test_beamtime_dir_blacklist_is_exact(tmp_path) -> None:
    cfg = make_config(scandir_blacklist=[str(tmp_path / "bt")])
    assert tree.beamtime_dir_blacklisted(cfg, str(tmp_path / "bt"))
    assert not tree.beamtime_dir_blacklisted(cfg, str(tmp_path / "bt2"))
    assert not tree.beamtime_dir_blacklisted(cfg, str(tmp_path / "bt" / "sub"))


# --------------------------------------------------------------- scan dirs


def test_read_scan_dir(tmp_path) -> None:
    touch_list(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "data.nxs").write_text("")
    os.symlink(str(tmp_path / "sub"), str(tmp_path / "link"))
    listing = tree.read_scan_dir(str(tmp_path), f"scicat-datasets-{BT}.lst")
    assert listing is not None and listing.has_list
    assert listing.subdirs == ("sub",)
    assert tree.read_scan_dir(str(tmp_path / "sub"), f"scicat-datasets-{BT}.lst").list_stat is None
    assert tree.read_scan_dir(str(tmp_path), "x", stop=lambda: True) is None


def test_a_directory_named_like_the_list_is_no_list(tmp_path) -> None:
    (tmp_path / f"scicat-datasets-{BT}.lst").mkdir()
    listing = tree.read_scan_dir(str(tmp_path), f"scicat-datasets-{BT}.lst")
    assert listing is not None and not listing.has_list and listing.subdirs == ()


def test_policy_budget_and_descent(tmp_path) -> None:
    path = write_beamtime(tmp_path)
    beamtime = load_beamtime(path)
    unlimited = tree.ScanPolicy.for_beamtime(make_config(), beamtime)
    assert unlimited.root_budget == tree.UNLIMITED
    assert unlimited.child_budget(tree.UNLIMITED) == tree.UNLIMITED
    assert unlimited.list_name == f"scicat-datasets-{BT}.lst"
    assert unlimited.descends(tree.UNLIMITED, has_list=False)
    assert not unlimited.descends(tree.UNLIMITED, has_list=True)
    limited = tree.ScanPolicy.for_beamtime(
        make_config(max_scandir_depth=1, watch_scandir_subdir=True), beamtime)
    assert limited.root_budget == 1 and limited.child_budget(1) == 0
    assert limited.descends(1, has_list=True) and not limited.descends(0, has_list=False)


@pytest.mark.parametrize("depth, subdirs, expected", [
    (-1, False, ["raw", "raw2/a/b", "raw2/c"]),
    (-1, True, ["raw", "raw/sub", "raw2/a/b", "raw2/c"]),
    (1, True, ["raw"]),
    (2, True, ["raw", "raw/sub", "raw2/c"]),
    (0, True, []),
])
def test_find_list_dirs(tmp_path, depth, subdirs, expected) -> None:
    bt = tmp_path / "bt"
    write_beamtime(bt)
    for rel in ("raw", "raw/sub", "raw2/a/b", "raw2/c", "processed", "processed/deep/x"):
        touch_list(bt / rel)
    (bt / "raw2" / "empty").mkdir()
    os.symlink(str(bt / "raw"), str(bt / "raw2" / "link"))
    cfg = make_config(max_scandir_depth=depth, watch_scandir_subdir=subdirs,
                      scandir_blacklist=[str(bt / "processed")])
    assert list_dirs(cfg, bt) == [str(bt / rel) for rel in expected]


def test_blacklist_stops_descent_in_core_form(tmp_path) -> None:
    bt = tmp_path / "bt"
    write_beamtime(bt, corePath="/core/bt")
    keep = touch_list(bt / "raw")
    touch_list(bt / "scratch" / "deep")
    cfg = make_config(use_corepath_as_scandir=True, scandir_blacklist=["/core/bt/scratch"])
    assert list_dirs(cfg, bt) == [os.path.dirname(keep)]


def test_walk_reports_unreadable_directories(tmp_path) -> None:
    bt = tmp_path / "bt"
    write_beamtime(bt)
    policy = tree.ScanPolicy.for_beamtime(make_config(), load_beamtime(
        os.path.join(str(bt), f"beamtime-metadata-{BT}.json")))
    problems: List[str] = []
    assert tree.find_list_dirs(policy, str(tmp_path / "missing"), problems.append) == []
    assert len(problems) == 1 and str(tmp_path / "missing") in problems[0]
