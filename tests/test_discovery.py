"""Discovery of beamtimes, scan dirs and list files with real inotify and real dirs."""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Tuple

import pytest

from scingestor.beamtime import Beamtime, ScanDirContext
from scingestor.config import config_from_mapping
from scingestor.watch import Discovery, Watcher, inotify_available

BT = "99001234"
OTHER = "99001235"
LONG = 1000.0  # recheck interval long enough that only inotify events can explain a change


class RecordingSink:
    """Thread-safe record of what discovery reported."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.calls: List[Tuple[str, str]] = []
        self.contexts: Dict[str, ScanDirContext] = {}
        self.beamtimes: Dict[str, Beamtime] = {}

    def _add(self, kind: str, key: str) -> None:
        with self.cond:
            self.calls.append((kind, key))
            self.cond.notify_all()

    def beamtime_added(self, bt: Beamtime) -> None:
        self.beamtimes[bt.path] = bt
        self._add("bt+", bt.path)

    def beamtime_removed(self, path: str) -> None:
        self._add("bt-", path)

    def list_found(self, ctx: ScanDirContext) -> None:
        self.contexts[ctx.list_path] = ctx
        self._add("found", ctx.list_path)

    def list_changed(self, ctx: ScanDirContext) -> None:
        self._add("changed", ctx.list_path)

    def list_removed(self, ctx: ScanDirContext) -> None:
        self._add("removed", ctx.list_path)

    def count(self, kind: str, key: str) -> int:
        with self.cond:
            return self.calls.count((kind, key))

    def keys(self, kind: str) -> List[str]:
        with self.cond:
            return [key for k, key in self.calls if k == kind]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.cond.wait(min(remaining, 0.1))
            return True


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def write_beamtime(directory: Any, beamtime_id: str = BT, prefix: str = "beamtime-metadata-",
                   postfix: str = ".json", **fields: Any) -> str:
    data = {"beamtimeId": beamtime_id, "proposalId": "11112222", "beamline": "p00",
            "proposalType": "I"}
    data.update(fields)
    path = os.path.join(str(directory), f"{prefix}{beamtime_id}{postfix}")
    with open(path, "w") as handle:
        handle.write(json.dumps(data))
    return path


def write_list(directory: Any, lines: Tuple[str, ...] = ("scan_00001",),
               beamtime_id: str = BT, name: str = "scicat-datasets-{}.lst") -> str:
    os.makedirs(str(directory), exist_ok=True)
    path = os.path.join(str(directory), name.format(beamtime_id))
    with open(path, "a") as handle:
        handle.write("".join(line + "\n" for line in lines))
    return path


def make_config(**values: Any) -> Any:
    values.setdefault("scandir_blacklist", [])
    values.setdefault("recheck_beamtime_file_interval", LONG)
    values.setdefault("recheck_dataset_list_interval", LONG)
    return config_from_mapping(values)


def inotify_fds() -> int:
    count = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") == "anon_inode:inotify":
                count += 1
        except OSError:
            continue
    return count


@pytest.fixture
def start() -> Iterator[Callable[..., Tuple[Watcher, RecordingSink]]]:
    """``start(**config)`` starts a watcher; all are stopped at teardown."""
    watchers: List[Watcher] = []

    def run(**values: Any) -> Tuple[Watcher, RecordingSink]:
        sink = RecordingSink()
        watcher = Watcher(make_config(**values), sink)
        watcher.start()
        watchers.append(watcher)
        return watcher, sink

    yield run
    for watcher in watchers:
        watcher.stop()


needs_inotify = pytest.mark.part("inotify", inotify_available(),
                                 "cannot create an inotify instance")


@pytest.fixture
def bt(tmp_path: Any) -> Any:
    path = tmp_path / "beamtime"
    path.mkdir()
    return path


# ---------------------------------------------------------------- beamtimes


@needs_inotify
def test_existing_beamtime_and_list_reported_before_start_returns(start, bt) -> None:
    btfile = write_beamtime(bt)
    listfile = write_list(bt / "raw")
    watcher, sink = start(beamtime_dirs=[str(bt)])
    assert sink.keys("bt+") == [btfile]
    assert sink.keys("found") == [listfile]
    ctx = sink.contexts[listfile]
    assert ctx.scandir == str(bt / "raw") and ctx.relpath == "raw"
    snap = watcher.snapshot()
    assert snap.mode == "inotify"
    assert snap.beamtime_files == (btfile,)
    assert snap.list_files == (listfile,)
    assert str(bt / "raw") in snap.scan_dirs
    assert watcher.thread is not None and watcher.thread.name == "scingestor-watch"


@needs_inotify
def test_beamtime_file_added_removed_and_readded_custom_name(start, bt) -> None:
    first = write_beamtime(bt, OTHER, prefix="bt-mt-", postfix=".jsn")
    first_list = write_list(bt / "raw", beamtime_id=OTHER)
    own_list = write_list(bt / "raw", beamtime_id=BT)
    _, sink = start(beamtime_dirs=[str(bt)], beamtime_filename_prefix="bt-mt-",
                    beamtime_filename_postfix=".jsn")
    assert sink.keys("found") == [first_list]
    path = write_beamtime(bt, BT, prefix="bt-mt-", postfix=".jsn")
    assert sink.wait_for(lambda: sink.count("found", own_list) == 1)
    assert sink.keys("bt+") == [first, path]
    os.unlink(path)
    assert sink.wait_for(lambda: sink.count("bt-", path) == 1)
    assert sink.keys("removed") == [own_list]
    assert sink.keys("bt-") == [path]  # the other beamtime of the directory keeps running
    write_beamtime(bt, BT, prefix="bt-mt-", postfix=".jsn")
    assert sink.wait_for(lambda: sink.count("found", own_list) == 2)
    assert sink.count("bt+", path) == 2
    assert sink.count("found", first_list) == 1


@needs_inotify
def test_beamtime_file_moved_in_and_out(start, bt, tmp_path) -> None:
    listfile = write_list(bt / "raw")
    _, sink = start(beamtime_dirs=[str(bt)])
    staged = write_beamtime(tmp_path)
    target = os.path.join(str(bt), os.path.basename(staged))
    os.rename(staged, target)
    assert sink.wait_for(lambda: sink.count("found", listfile) == 1)
    os.rename(target, staged)
    assert sink.wait_for(lambda: sink.count("bt-", target) == 1)
    assert sink.keys("removed") == [listfile]


@needs_inotify
def test_changed_beamtime_id_is_removed_and_added(start, bt) -> None:
    path = write_beamtime(bt, prefix="bt-", postfix=".json")
    list_a = write_list(bt / "raw", beamtime_id=BT)
    list_b = write_list(bt / "raw", beamtime_id=OTHER)
    _, sink = start(beamtime_dirs=[str(bt)], beamtime_filename_prefix="bt-")
    assert sink.keys("found") == [list_a]
    with open(path, "w") as handle:
        json.dump({"beamtimeId": OTHER, "beamline": "p00", "proposalId": "1"}, handle)
    assert sink.wait_for(lambda: sink.count("found", list_b) == 1)
    assert sink.keys("removed") == [list_a]
    assert sink.keys("bt-") == [path]
    assert sink.beamtimes[path].beamtime_id == OTHER


@needs_inotify
def test_base_dir_existing_and_new_beamtime_dirs(start, tmp_path) -> None:
    base = tmp_path / "base"
    old = base / "old"
    old.mkdir(parents=True)
    write_beamtime(old, BT)
    old_list = write_list(old / "raw", beamtime_id=BT)
    watcher, sink = start(beamtime_base_dir=str(base))
    assert sink.keys("found") == [old_list]
    new = base / "new"
    new.mkdir()
    new_list = write_list(new / "raw", beamtime_id=OTHER)
    write_beamtime(new, OTHER)
    assert sink.wait_for(lambda: sink.count("found", new_list) == 1)
    assert str(new) in watcher.snapshot().beamtime_dirs
    os.unlink(os.path.join(str(new), f"beamtime-metadata-{OTHER}.json"))
    assert sink.wait_for(lambda: sink.count("removed", new_list) == 1)
    write_beamtime(new, OTHER)
    assert sink.wait_for(lambda: sink.count("found", new_list) == 2)


@needs_inotify
def test_invalid_json_warns_once_and_is_retried_when_fixed(start, bt, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="scingestor.watch")
    listfile = write_list(bt / "raw")
    watcher, sink = start(beamtime_dirs=[str(bt)])
    path = os.path.join(str(bt), f"beamtime-metadata-{BT}.json")
    with open(path, "w") as handle:
        handle.write('{"beamtimeId": ')

    def warnings() -> List[str]:
        return [r.getMessage() for r in caplog.records
                if r.levelno == logging.WARNING and path in r.getMessage()]

    assert wait_until(lambda: len(warnings()) == 1)
    assert path not in watcher.snapshot().beamtime_files
    assert sink.keys("bt+") == [] and sink.count("found", listfile) == 0
    write_beamtime(bt)
    assert sink.wait_for(lambda: sink.count("found", listfile) == 1)
    assert len(warnings()) == 1  # reported once, while it was broken
    assert sink.keys("bt+") == [path]
    assert path in watcher.snapshot().beamtime_files


@needs_inotify
def test_unusable_paths_only_warn(start, bt, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="scingestor.watch")
    write_beamtime(bt)
    listfile = write_list(bt / "raw")
    watcher, sink = start(beamtime_dirs=["/no/such\0dir", str(bt), str(bt / "missing")])
    assert sink.keys("found") == [listfile]
    dirs = watcher.snapshot().beamtime_dirs
    assert str(bt) in dirs and not any(d.startswith("/no/such") for d in dirs)
    # the unusable path is reported (named), not fatal
    assert any(r.levelno == logging.WARNING and "/no/such" in r.getMessage()
               for r in caplog.records)
    watcher.rescan()
    write_list(bt / "raw")
    assert sink.wait_for(lambda: sink.count("changed", listfile) >= 1)


@needs_inotify
@pytest.mark.parametrize("blacklist, ignored, accepted", [(None, "P", "I"), (["I"], "I", "P")])
def test_proposal_type_blacklist(start, tmp_path, blacklist, ignored, accepted) -> None:
    dirs = {}
    for ptype in ("P", "I"):
        directory = tmp_path / ptype
        directory.mkdir()
        write_beamtime(directory, proposalType=ptype)
        dirs[ptype] = write_list(directory / "raw")
    values: Dict[str, Any] = {"beamtime_dirs": [str(tmp_path / "P"), str(tmp_path / "I")]}
    if blacklist is not None:
        values["beamtime_type_blacklist"] = blacklist
    _, sink = start(**values)
    assert sink.keys("found") == [dirs[accepted]]


@needs_inotify
def test_beamtime_id_blacklist_file_also_for_later_files(start, tmp_path) -> None:
    blacklist = tmp_path / "blacklist.txt"
    blacklist.write_text(" 11110000 \n99001234\n")
    dirs = [tmp_path / name for name in ("a", "b")]
    for directory in dirs:
        directory.mkdir()
    write_beamtime(dirs[0], "11110000")
    bad_old = write_list(dirs[0] / "raw", beamtime_id="11110000")
    _, sink = start(beamtime_dirs=[str(d) for d in dirs],
                    beamtimeid_blacklist_file=str(blacklist))
    assert sink.keys("found") == []
    bad_new = write_list(dirs[1] / "raw", beamtime_id=BT)
    good = write_list(dirs[1] / "raw", beamtime_id=OTHER)
    write_beamtime(dirs[1], BT)
    write_beamtime(dirs[1], OTHER)  # written after the blacklisted one: a sentinel
    assert sink.wait_for(lambda: sink.count("found", good) == 1)
    assert bad_new not in sink.keys("found") and bad_old not in sink.keys("found")


@needs_inotify
def test_scandir_blacklist(start, tmp_path) -> None:
    black_bt = tmp_path / "black"
    white_bt = tmp_path / "white"
    for directory in (black_bt, white_bt):
        directory.mkdir()
    write_beamtime(black_bt, OTHER)
    write_list(black_bt / "raw", beamtime_id=OTHER)
    write_beamtime(white_bt, BT)
    keep = write_list(white_bt / "raw", beamtime_id=BT)
    write_list(white_bt / "scratch" / "deep", beamtime_id=BT)
    watcher, sink = start(beamtime_dirs=[str(black_bt), str(white_bt)],
                          scandir_blacklist=[str(black_bt), str(white_bt / "scratch")])
    assert sink.keys("bt+") == [os.path.join(str(white_bt), f"beamtime-metadata-{BT}.json")]
    assert sink.keys("found") == [keep]
    assert str(white_bt / "scratch") not in watcher.snapshot().scan_dirs
    (white_bt / "scratch" / "later").mkdir()
    os.mkdir(white_bt / "sentinel")
    assert wait_until(lambda: str(white_bt / "sentinel") in watcher.snapshot().scan_dirs)
    assert not any("scratch" in d for d in watcher.snapshot().scan_dirs)


# ---------------------------------------------------------------- scan tree


@needs_inotify
@pytest.mark.parametrize("depth, found", [(0, False), (1, False), (2, True), (-1, True)])
def test_max_scandir_depth(start, bt, depth, found) -> None:
    write_beamtime(bt)
    listfile = write_list(bt / "a" / "b")
    watcher, sink = start(beamtime_dirs=[str(bt)], max_scandir_depth=depth)
    assert (sink.keys("found") == [listfile]) is found
    scan_dirs = watcher.snapshot().scan_dirs
    assert (str(bt / "a") in scan_dirs) is (depth != 0)
    assert str(bt) in scan_dirs


@needs_inotify
@pytest.mark.parametrize("subdirs", [False, True])
def test_descent_stops_at_list_dir_unless_watch_scandir_subdir(start, bt, subdirs) -> None:
    write_beamtime(bt)
    top = write_list(bt / "raw")
    deep = write_list(bt / "raw" / "sub")
    _, sink = start(beamtime_dirs=[str(bt)], watch_scandir_subdir=subdirs)
    assert sink.keys("found") == ([top, deep] if subdirs else [top])


@needs_inotify
def test_list_appearing_stops_descent_and_disappearing_resumes_it(start, bt) -> None:
    write_beamtime(bt)
    deep = write_list(bt / "raw" / "sub")
    watcher, sink = start(beamtime_dirs=[str(bt)])
    assert sink.keys("found") == [deep]
    top = write_list(bt / "raw")
    assert sink.wait_for(lambda: sink.count("removed", deep) == 1)
    assert sink.count("found", top) == 1
    assert str(bt / "raw" / "sub") not in watcher.snapshot().scan_dirs
    os.unlink(top)
    assert sink.wait_for(lambda: sink.count("found", deep) == 2)
    assert sink.count("removed", top) == 1


@needs_inotify
def test_foreign_and_custom_list_names(start, bt) -> None:
    write_beamtime(bt)
    write_list(bt / "raw", beamtime_id=OTHER, name="sc-ds-{}.lst")
    write_list(bt / "raw", beamtime_id=BT)
    custom = write_list(bt / "raw", beamtime_id=BT, name="sc-ds-{}.lst")
    _, sink = start(beamtime_dirs=[str(bt)], datasets_filename_pattern="sc-ds-{beamtimeid}.lst")
    assert sink.keys("found") == [custom]


@needs_inotify
def test_runtime_subdirs_lists_and_appends(start, bt) -> None:
    write_beamtime(bt)
    (bt / "raw").mkdir()
    watcher, sink = start(beamtime_dirs=[str(bt)])
    assert sink.keys("found") == []
    listfile = write_list(bt / "raw" / "new")
    nested = write_list(bt / "raw" / "x" / "y" / "z")  # made faster than watches are added
    assert sink.wait_for(lambda: sink.count("found", listfile) == 1)
    assert sink.wait_for(lambda: sink.count("found", nested) == 1)
    write_list(bt / "raw" / "new", ("scan_00002",))
    assert sink.wait_for(lambda: sink.count("changed", listfile) >= 1)
    os.unlink(listfile)
    assert sink.wait_for(lambda: sink.count("removed", listfile) == 1)
    write_list(bt / "raw" / "new")
    assert sink.wait_for(lambda: sink.count("found", listfile) == 2)
    shutil.rmtree(bt / "raw" / "x")
    assert sink.wait_for(lambda: sink.count("removed", nested) == 1)
    assert wait_until(lambda: str(bt / "raw" / "x") not in watcher.snapshot().scan_dirs)


@needs_inotify
def test_directory_moved_in_and_out_is_noticed_by_events(start, bt, tmp_path) -> None:
    write_beamtime(bt)
    (bt / "raw").mkdir()
    staged = write_list(tmp_path / "outside" / "scan1" / "inner")
    _, sink = start(beamtime_dirs=[str(bt)])
    os.rename(tmp_path / "outside" / "scan1", bt / "raw" / "scan1")
    moved = os.path.join(str(bt / "raw" / "scan1" / "inner"), os.path.basename(staged))
    assert sink.wait_for(lambda: sink.count("found", moved) == 1)
    os.rename(bt / "raw" / "scan1", bt / "raw" / "renamed")
    renamed = moved.replace("scan1", "renamed")
    assert sink.wait_for(lambda: sink.count("found", renamed) == 1)
    assert sink.count("removed", moved) == 1
    os.rename(bt / "raw" / "renamed", tmp_path / "gone")
    assert sink.wait_for(lambda: sink.count("removed", renamed) == 1)


@needs_inotify
def test_list_replaced_by_rename_is_changed(start, bt) -> None:
    write_beamtime(bt)
    listfile = write_list(bt / "raw")
    _, sink = start(beamtime_dirs=[str(bt)])
    temp = str(bt / "raw" / "tmp.lst")
    with open(temp, "w") as handle:
        handle.write("scan_00001\nscan_00002\n")
    os.rename(temp, listfile)
    assert sink.wait_for(lambda: sink.count("changed", listfile) >= 1)
    assert sink.count("removed", listfile) == 0


# ----------------------------------------------------------- rechecks, polling


@needs_inotify
def test_missing_beamtime_dir_found_by_periodic_recheck(start, tmp_path) -> None:
    bt = tmp_path / "later"
    _, sink = start(beamtime_dirs=[str(bt)], recheck_beamtime_file_interval=0.2)
    bt.mkdir()
    write_beamtime(bt)
    listfile = write_list(bt / "raw")
    assert sink.wait_for(lambda: sink.count("found", listfile) == 1)


@needs_inotify
def test_missing_beamtime_dir_found_by_events_when_created(start, tmp_path) -> None:
    bt = tmp_path / "gpfs" / "current"
    _, sink = start(beamtime_dirs=[str(bt)])
    bt.mkdir(parents=True)
    write_beamtime(bt)
    listfile = write_list(bt / "raw")
    assert sink.wait_for(lambda: sink.count("found", listfile) == 1)
    os.unlink(os.path.join(str(bt), f"beamtime-metadata-{BT}.json"))
    os.rename(bt, tmp_path / "old")
    assert sink.wait_for(lambda: sink.count("removed", listfile) == 1)
    bt.mkdir()
    write_beamtime(bt)
    write_list(bt / "raw")
    assert sink.wait_for(lambda: sink.count("found", listfile) == 2)


def test_polling_only_mode(start, bt) -> None:
    fds = inotify_fds()
    watcher, sink = start(beamtime_dirs=[str(bt)], poll_only=True,
                          recheck_beamtime_file_interval=0.3, recheck_dataset_list_interval=0.1)
    assert inotify_fds() == fds
    snap = watcher.snapshot()
    assert snap.mode == "polling" and snap.watches == 0
    path = write_beamtime(bt)
    listfile = write_list(bt / "raw")
    assert sink.wait_for(lambda: sink.count("found", listfile) == 1)
    assert sink.keys("bt+") == [path]
    write_list(bt / "raw", ("scan_00002",))
    assert sink.wait_for(lambda: sink.count("changed", listfile) >= 1)
    deep = write_list(bt / "other" / "deeper")
    assert sink.wait_for(lambda: sink.count("found", deep) == 1)
    os.unlink(path)
    assert sink.wait_for(lambda: sink.count("removed", listfile) == 1)


def test_discovery_reconciles_without_events(bt) -> None:
    write_beamtime(bt)
    sink = RecordingSink()
    discovery = Discovery(make_config(beamtime_dirs=[str(bt)]), sink)
    discovery.scan_all()
    assert sink.keys("found") == []
    listfile = write_list(bt / "raw" / "a")
    discovery.poll()
    assert sink.keys("found") == [listfile]
    write_list(bt / "raw" / "a", ("scan_00002",))
    discovery.check_lists()
    assert sink.keys("changed") == [listfile]
    discovery.scan_all()
    assert sink.keys("changed") == [listfile]  # unchanged files are not reported again
    os.rename(bt / "raw" / "a", bt / "raw" / "b")
    discovery.scan_all()
    assert sink.keys("removed") == [listfile]
    assert sink.keys("found")[-1] == listfile.replace("/a/", "/b/")
    assert discovery.snapshot().mode == "polling"


@needs_inotify
def test_core_path_contexts(start, bt) -> None:
    core = "/core/p00/2024/data/" + BT
    write_beamtime(bt, corePath=core)
    write_list(bt / "raw")
    _, sink = start(beamtime_dirs=[str(bt)], use_corepath_as_scandir=True)
    expected = os.path.join(core, "raw", f"scicat-datasets-{BT}.lst")
    assert sink.keys("found") == [expected]
    ctx = sink.contexts[expected]
    assert ctx.scandir == str(bt / "raw")
    assert ctx.scanpath == os.path.join(core, "raw")
    assert ctx.relpath == "raw"
    write_list(bt / "raw", ("scan_00002",))
    assert sink.wait_for(lambda: sink.count("changed", expected) >= 1)


# ------------------------------------------------------------------- scale


@needs_inotify
def test_many_directories_one_descriptor_one_thread(start, tmp_path) -> None:
    threads_before = threading.active_count()
    fds_before = inotify_fds()
    small_bt = tmp_path / "small"
    small_bt.mkdir()
    write_beamtime(small_bt)
    for index in range(5):
        (small_bt / f"d{index}").mkdir()
    small, _ = start(beamtime_dirs=[str(small_bt)])
    threads_small = threading.active_count() - threads_before
    small.stop()

    big_bt = tmp_path / "big"
    big_bt.mkdir()
    write_beamtime(big_bt)
    for index in range(200):
        (big_bt / f"scan{index:03d}").mkdir()
    last = write_list(big_bt / "scan199")
    big, sink = start(beamtime_dirs=[str(big_bt)])
    assert threading.active_count() - threads_before == threads_small == 1
    assert inotify_fds() == fds_before + 1
    assert big.snapshot().watches == 201
    assert sink.keys("found") == [last]
    assert big.stop()
    assert big.thread is not None and not big.thread.is_alive()
    assert inotify_fds() == fds_before


@needs_inotify
@pytest.mark.parametrize("poll_only", [False, True])
def test_stop_ends_thread_promptly(start, bt, poll_only) -> None:
    write_beamtime(bt)
    watcher, _ = start(beamtime_dirs=[str(bt)], poll_only=poll_only,
                       recheck_beamtime_file_interval=0, recheck_dataset_list_interval=0)
    assert watcher.thread is not None and watcher.thread.is_alive()
    assert watcher.stop(timeout=5.0)
    assert not watcher.thread.is_alive()
    assert watcher.snapshot().watches == 0


@needs_inotify
def test_queue_overflow_triggers_full_reconciliation(bt) -> None:
    from scingestor.watch import Event, Notifier
    from scingestor.watch.inotify import IN_Q_OVERFLOW

    write_beamtime(bt)
    sink = RecordingSink()
    with Notifier() as notifier:
        discovery = Discovery(make_config(beamtime_dirs=[str(bt)]), sink, notifier)
        discovery.scan_all()
        listfile = write_list(bt / "raw" / "lost")  # its events are never read
        discovery.handle([Event(wd=-1, mask=IN_Q_OVERFLOW, name="", path="")])
        assert sink.keys("found") == [listfile]
        discovery.close()


@needs_inotify
def test_failing_sink_does_not_stop_the_watcher(start, bt) -> None:
    write_beamtime(bt)
    write_list(bt / "raw")
    watcher, sink = start(beamtime_dirs=[str(bt)])
    original = sink.list_found

    def broken(ctx: ScanDirContext) -> None:
        original(ctx)
        raise RuntimeError("sink failure")

    sink.list_found = broken  # type: ignore[method-assign]
    first = write_list(bt / "raw2")
    second = write_list(bt / "raw3")
    assert sink.wait_for(lambda: sink.count("found", first) == 1)
    assert sink.wait_for(lambda: sink.count("found", second) == 1)
    assert watcher.thread is not None and watcher.thread.is_alive()
