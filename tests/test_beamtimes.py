"""Beamtime directories and files (scingestor/watch/beamtimes.py) alone, in polling mode."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, List

from scingestor.config import config_from_mapping
from scingestor.watch.beamtimes import BeamtimeDirs, BeamtimeDirty, BeamtimeFiles, BeamtimeUpdate
from scingestor.watch.inotify import IN_CLOSE_WRITE, IN_CREATE, IN_ISDIR, Event
from scingestor.watch.stamps import file_stamp
from scingestor.watch.watchset import WatchSet

BT = "99001234"


def make_config(**values: Any) -> Any:
    values.setdefault("scandir_blacklist", [])
    return config_from_mapping(values)


def write_beamtime(directory: Path, beamtime_id: str = BT, mtime: float = 1e9,
                   **fields: Any) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    data = {"beamtimeId": beamtime_id, "proposalId": "1", "beamline": "p00",
            "proposalType": "I", **fields}
    path = directory / f"beamtime-metadata-{beamtime_id}.json"
    path.write_text(json.dumps(data))
    os.utime(path, (mtime, mtime))
    return str(path)


def stamp(path: str) -> Any:
    return file_stamp(os.stat(path))


def summary(updates: List[BeamtimeUpdate]) -> List[tuple]:
    """(path, removed id, added id) of the updates that change anything."""
    return [(u.path, u.removed.beamtime_id if u.removed else None,
             u.added.beamtime_id if u.added else None)
            for u in updates if u.removed or u.added]


# ------------------------------------------------------------------ files


def test_new_file_is_followed_and_an_unchanged_stamp_changes_nothing(tmp_path) -> None:
    files = BeamtimeFiles(make_config())
    path = write_beamtime(tmp_path)
    update = files.update(path, stamp(path))
    assert update.added is not None and update.added.beamtime_id == BT
    assert files.is_followed(path) and list(files.followed()) == [path]
    assert files.update(path, stamp(path)) == BeamtimeUpdate(path)
    assert files.known_in(str(tmp_path)) == [path]


def test_rewritten_with_same_content_is_kept_changed_content_replaces(tmp_path) -> None:
    files = BeamtimeFiles(make_config())
    path = write_beamtime(tmp_path)
    files.update(path, stamp(path))
    write_beamtime(tmp_path, mtime=1e9 + 10)
    assert files.update(path, stamp(path)) == BeamtimeUpdate(path)
    write_beamtime(tmp_path, mtime=1e9 + 20, beamline="p01")
    update = files.update(path, stamp(path))
    assert update.removed is not None and update.removed.beamline == "p00"
    assert update.added is not None and update.added.beamline == "p01"


def test_broken_content_keeps_the_last_good_one(tmp_path) -> None:
    files = BeamtimeFiles(make_config())
    path = write_beamtime(tmp_path)
    files.update(path, stamp(path))
    Path(path).write_text('{"beamtimeId": ')
    os.utime(path, (2e9, 2e9))
    assert files.update(path, stamp(path)) == BeamtimeUpdate(path)
    assert files.followed()[path].beamtime_id == BT


def test_unparsable_new_file_is_rejected_until_it_changes(tmp_path) -> None:
    files = BeamtimeFiles(make_config())
    path = str(tmp_path / f"beamtime-metadata-{BT}.json")
    Path(path).write_text("not json")
    assert files.update(path, stamp(path)) == BeamtimeUpdate(path)
    assert not files.is_followed(path) and files.known_in(str(tmp_path)) == [path]
    write_beamtime(tmp_path, mtime=3e9)
    assert files.update(path, stamp(path)).added is not None


def test_id_blacklist_is_applied_again_when_forced(tmp_path) -> None:
    blacklist = tmp_path / "ids.txt"
    blacklist.write_text(BT + "\n")
    files = BeamtimeFiles(make_config(beamtimeid_blacklist_file=str(blacklist)))
    path = write_beamtime(tmp_path / "bt")
    assert files.update(path, stamp(path)) == BeamtimeUpdate(path)
    blacklist.write_text("other\n")
    os.utime(blacklist, (4e9, 4e9))
    assert files.update(path, stamp(path)) == BeamtimeUpdate(path)  # not forced: unchanged
    assert files.update(path, stamp(path), force=True).added is not None


def test_blacklisted_directory_is_not_even_parsed(tmp_path) -> None:
    files = BeamtimeFiles(make_config(scandir_blacklist=[str(tmp_path)]))
    path = str(tmp_path / f"beamtime-metadata-{BT}.json")
    Path(path).write_text("not json")
    assert files.update(path, stamp(path), force=True) == BeamtimeUpdate(path)
    assert not files.is_followed(path)


def test_resolve_and_forget(tmp_path) -> None:
    files = BeamtimeFiles(make_config())
    empty = tmp_path / f"beamtime-metadata-{BT}.json"
    empty.write_text("")
    assert files.resolve(str(empty), quiet_if_empty=True) == BeamtimeUpdate(str(empty))
    assert files.known_in(str(tmp_path)) == []
    path = write_beamtime(tmp_path)
    assert files.resolve(path).added is not None
    os.unlink(path)
    assert files.resolve(path).removed is not None
    assert files.forget(path) == BeamtimeUpdate(path)


# ------------------------------------------------------------ directories


def test_configured_and_base_dirs_are_reconciled(tmp_path) -> None:
    base = tmp_path / "base"
    own = tmp_path / "own"
    first = write_beamtime(own, "1")
    second = write_beamtime(base / "a", "2")
    dirs = BeamtimeDirs(make_config(beamtime_dirs=[str(own), "bad\0dir"],
                                    beamtime_base_dir=str(base)), WatchSet(None))
    assert summary(dirs.reconcile(force=True)) == [(second, None, "2"), (first, None, "1")]
    assert dirs.paths() == [str(base / "a"), str(own)]
    assert summary(dirs.reconcile(force=True)) == []
    third = write_beamtime(base / "b", "3")
    os.unlink(first)
    assert summary(dirs.reconcile(force=False)) == [(third, None, "3"), (first, "1", None)]
    os.unlink(second)
    os.rmdir(base / "a")
    assert summary(dirs.reconcile(force=False)) == [(second, "2", None)]
    assert dirs.paths() == [str(base / "b"), str(own)]


def test_missing_configured_dir_is_kept_and_found_later(tmp_path) -> None:
    later = tmp_path / "later"
    dirs = BeamtimeDirs(make_config(beamtime_dirs=[str(later)]), WatchSet(None))
    assert dirs.reconcile(force=True) == []
    path = write_beamtime(later)
    assert summary(dirs.reconcile(force=False)) == [(path, None, BT)]
    os.unlink(path)
    os.rmdir(later)
    assert summary(dirs.reconcile(force=False)) == [(path, BT, None)]
    assert dirs.paths() == [str(later)]


def test_events_mark_what_to_look_at(tmp_path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    own = tmp_path / "own"
    own.mkdir()
    dirs = BeamtimeDirs(make_config(beamtime_dirs=[str(own)], beamtime_base_dir=str(base)),
                        WatchSet(None))
    dirs.reconcile(force=True)
    dirty = BeamtimeDirty()
    name = f"beamtime-metadata-{BT}.json"
    dirs.mark_entry(str(base), Event(1, IN_CREATE | IN_ISDIR, "new", ""), dirty)
    dirs.mark_entry(str(own), Event(2, IN_CREATE, name, ""), dirty)
    dirs.mark_entry(str(own), Event(2, IN_CREATE, "other.txt", ""), dirty)
    assert dirty.base and dirty.files == {str(own / name): True}
    dirs.mark_entry(str(own), Event(2, IN_CLOSE_WRITE, name, ""), dirty)
    assert dirty.files == {str(own / name): False}
    write_beamtime(base / "new", "2")
    path = write_beamtime(own)
    assert summary(dirs.apply(dirty)) == [
        (str(base / "new" / "beamtime-metadata-2.json"), None, "2"), (path, None, BT)]
