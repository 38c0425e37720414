"""Scan trees (scingestor/watch/scantree.py) alone, in polling mode with a recording sink."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, List, Tuple

from scingestor.beamtime import Beamtime, ScanDirContext, load_beamtime
from scingestor.config import config_from_mapping
from scingestor.watch.inotify import IN_CLOSE_WRITE, IN_CREATE, IN_DELETE, IN_ISDIR, Event
from scingestor.watch.scantree import ScanDirty, ScanTrees
from scingestor.watch.watchset import WatchSet

BT = "99001234"
LIST = f"scicat-datasets-{BT}.lst"


class Recorder:
    """Records the list events (the beamtime ones never come from a scan tree)."""

    def __init__(self) -> None:
        self.calls: List[Tuple[str, str]] = []

    def beamtime_added(self, bt: Beamtime) -> None:
        raise AssertionError("not a scan tree event")

    def beamtime_removed(self, path: str) -> None:
        raise AssertionError("not a scan tree event")

    def list_found(self, ctx: ScanDirContext) -> None:
        self.calls.append(("found", ctx.list_path))

    def list_changed(self, ctx: ScanDirContext) -> None:
        self.calls.append(("changed", ctx.list_path))

    def list_removed(self, ctx: ScanDirContext) -> None:
        self.calls.append(("removed", ctx.list_path))

    def take(self) -> List[Tuple[str, str]]:
        calls, self.calls = self.calls, []
        return calls


def setup(tmp_path: Path, **values: Any) -> Tuple[ScanTrees, Recorder, WatchSet, Beamtime]:
    bt = tmp_path / "bt"
    bt.mkdir()
    path = bt / f"beamtime-metadata-{BT}.json"
    path.write_text(json.dumps({"beamtimeId": BT, "proposalType": "I"}))
    values.setdefault("scandir_blacklist", [])
    watches = WatchSet(None)
    sink = Recorder()
    trees = ScanTrees(config_from_mapping(values), watches, sink)
    return trees, sink, watches, load_beamtime(str(path))


def write_list(directory: Path, mtime: float = 1e9) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LIST
    with open(path, "a") as handle:
        handle.write("scan_00001\n")
    os.utime(path, (mtime, mtime))
    return str(path)


def test_add_walks_by_the_tree_policy_and_remove_reports_every_list(tmp_path) -> None:
    trees, sink, watches, beamtime = setup(
        tmp_path, max_scandir_depth=2, scandir_blacklist=[str(tmp_path / "bt" / "processed")])
    bt = tmp_path / "bt"
    raw = write_list(bt / "raw")
    write_list(bt / "raw" / "sub")
    write_list(bt / "processed" / "run")
    write_list(bt / "a" / "b" / "c")
    trees.add(beamtime)
    assert sink.take() == [("found", raw)]
    assert trees.list_files() == [raw]
    assert trees.scan_dirs() == sorted(str(bt / rel) for rel in ("", "a", "a/b", "raw"))
    assert watches.users(str(bt / "raw")) == 1 and watches.users(str(bt / "processed")) == 0
    trees.remove(beamtime.path)
    assert sink.take() == [("removed", raw)]
    assert trees.scan_dirs() == [] and watches.users(str(bt)) == 0


def test_reconcile_follows_lists_and_directories(tmp_path) -> None:
    trees, sink, _, beamtime = setup(tmp_path)
    bt = tmp_path / "bt"
    trees.add(beamtime)
    assert sink.take() == []
    deep = write_list(bt / "raw" / "sub")
    trees.begin_pass()
    trees.reconcile(force=False)
    assert sink.take() == [("found", deep)]
    write_list(bt / "raw" / "sub", mtime=1e9 + 5)
    trees.check_lists()
    assert sink.take() == [("changed", deep)]
    top = write_list(bt / "raw")  # descent stops here: the deeper list goes
    trees.begin_pass()
    trees.reconcile(force=True)
    assert sink.take() == [("found", top), ("removed", deep)]
    os.unlink(top)
    trees.check_lists()
    assert sink.take() == [("removed", top), ("found", deep)]
    shutil.rmtree(bt / "raw")
    trees.begin_pass()
    trees.reconcile(force=False)
    assert sink.take() == [("removed", deep)]
    assert trees.scan_dirs() == [str(bt)]


def test_events_mark_directories_and_lists(tmp_path) -> None:
    trees, sink, _, beamtime = setup(tmp_path)
    bt = tmp_path / "bt"
    listfile = write_list(bt / "raw")
    trees.add(beamtime)
    sink.take()
    dirty = ScanDirty()
    trees.mark_entry(str(bt / "raw"), Event(1, IN_CLOSE_WRITE, LIST, ""), dirty)
    trees.mark_entry(str(bt / "raw"), Event(1, IN_CREATE, "scan.nxs", ""), dirty)
    trees.mark_entry(str(bt), Event(2, IN_CREATE | IN_ISDIR, "new", ""), dirty)
    trees.mark_entry(str(tmp_path), Event(3, IN_CREATE | IN_ISDIR, "x", ""), dirty)
    assert dirty.nodes == {str(bt)} and dirty.lists == {str(bt / "raw")}
    write_list(bt / "raw", mtime=1e9 + 1)
    new = write_list(bt / "new")
    trees.apply(dirty)
    assert sink.take() == [("found", new), ("changed", listfile)]
    dirty = ScanDirty()
    os.unlink(listfile)
    trees.mark_entry(str(bt / "raw"), Event(1, IN_DELETE, LIST, ""), dirty)
    trees.mark_directory(str(bt / "new"), dirty)
    assert dirty.nodes == {str(bt / "raw"), str(bt / "new")}
    trees.apply(dirty)
    assert sink.take() == [("removed", listfile)]


def test_symbolic_links_below_a_beamtime_are_not_followed(tmp_path) -> None:
    trees, sink, _, beamtime = setup(tmp_path)
    bt = tmp_path / "bt"
    outside = write_list(tmp_path / "outside")
    os.symlink(os.path.dirname(outside), str(bt / "link"))
    trees.add(beamtime)
    assert sink.take() == [] and trees.scan_dirs() == [str(bt)]
