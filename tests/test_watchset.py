"""The watch registry (scingestor/watch/watchset.py) alone."""

from __future__ import annotations

import errno
import os
from typing import Dict, List

import pytest

from scingestor.watch import Notifier, WatchError, inotify_available
from scingestor.watch.inotify import IN_CREATE, IN_IGNORED, Event
from scingestor.watch.watchset import MODE_INOTIFY, MODE_POLLING, WatchSet

needs_inotify = pytest.mark.skipif(not inotify_available(), reason="inotify not available")


class LimitedNotifier:
    """A notifier whose kernel accepts ``room`` watches, then reports the limit."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.watches: Dict[int, str] = {}
        self.removed: List[int] = []

    def add_watch(self, path: str, mask: int = 0) -> int:
        if not os.path.isdir(path):
            raise WatchError(path, errno.ENOENT, "missing")
        if len(self.watches) >= self.room:
            raise WatchError(path, errno.ENOSPC, "no space left")
        wd = len(self.watches) + len(self.removed) + 1
        self.watches[wd] = path
        return wd

    def remove_watch(self, wd: int) -> None:
        self.watches.pop(wd, None)
        self.removed.append(wd)


def test_polling_mode_counts_users_without_descriptors(tmp_path) -> None:
    watches = WatchSet(None)
    assert watches.mode == MODE_POLLING and not watches.inotify
    assert watches.acquire(str(tmp_path), 1) and watches.acquire(str(tmp_path), 1)
    assert watches.users(str(tmp_path)) == 2 and watches.count() == 0
    assert not watches.lost(str(tmp_path))
    watches.release(str(tmp_path))
    watches.release(str(tmp_path))
    assert watches.users(str(tmp_path)) == 0


@needs_inotify
def test_one_kernel_watch_per_path_released_with_its_last_user(tmp_path) -> None:
    with Notifier() as notifier:
        watches = WatchSet(notifier)
        assert watches.mode == MODE_INOTIFY
        path = str(tmp_path)
        ino = os.stat(path).st_ino
        assert watches.acquire(path, ino) and watches.acquire(path, ino)
        assert watches.count() == 1 and notifier.watch_count == 1
        assert not watches.acquire(str(tmp_path / "missing"), 0)
        assert watches.users(str(tmp_path / "missing")) == 0
        watches.release(path)
        assert notifier.watch_count == 1
        watches.release(path)
        assert watches.count() == 0 and notifier.watch_count == 0


@needs_inotify
def test_events_map_to_paths_and_a_removed_directory_loses_its_watch(tmp_path) -> None:
    with Notifier() as notifier:
        watches = WatchSet(notifier)
        path = str(tmp_path / "d")
        os.mkdir(path)
        watches.acquire(path, os.stat(path).st_ino)
        (tmp_path / "d" / "new").write_text("")
        events = notifier.read(1.0)
        assert events and all(watches.paths_of(event) == {path} for event in events)
        os.unlink(tmp_path / "d" / "new")
        os.rmdir(path)
        events = notifier.read(1.0)
        assert any(event.mask & IN_IGNORED for event in events)
        for event in events:
            watches.paths_of(event)
        assert watches.lost(path) and watches.count() == 0 and watches.users(path) == 1
        assert watches.paths_of(Event(wd=events[0].wd, mask=IN_CREATE, name="x",
                                      path=path)) == set()
        os.mkdir(path)
        watches.rewatch(path, os.stat(path).st_ino)
        assert not watches.lost(path) and watches.count() == 1
        watches.close()
        assert watches.count() == 0 and watches.users(path) == 0


def test_rewatch_follows_a_new_directory_at_the_same_path(tmp_path) -> None:
    notifier = LimitedNotifier(room=10)
    watches = WatchSet(notifier)  # type: ignore[arg-type]
    path = str(tmp_path / "d")
    os.mkdir(path)
    watches.acquire(path, os.stat(path).st_ino)
    old = set(notifier.watches)
    watches.rewatch(path, os.stat(path).st_ino)
    assert set(notifier.watches) == old  # same directory: nothing to do
    os.mkdir(path + ".new")
    os.rename(path, path + ".old")
    os.rename(path + ".new", path)
    watches.rewatch(path, os.stat(path).st_ino)
    assert notifier.removed == sorted(old) and len(notifier.watches) == 1


def test_watch_limit_switches_to_polling_once(tmp_path) -> None:
    notifier = LimitedNotifier(room=2)
    reasons: List[str] = []
    watches = WatchSet(notifier, reasons.append)  # type: ignore[arg-type]
    dirs = [tmp_path / name for name in "abc"]
    for directory in dirs:
        directory.mkdir()
        assert watches.acquire(str(directory), os.stat(directory).st_ino)
    assert watches.mode == MODE_POLLING and len(reasons) == 1
    assert notifier.watches == {} and watches.count() == 0
    assert all(watches.users(str(directory)) == 1 for directory in dirs)
    assert not watches.lost(str(dirs[0]))
