"""The inotify wrapper: one descriptor, shared watches, event decoding, wake-up."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from typing import Callable, Iterator, List

import pytest

from scingestor.watch.inotify import (
    DIRECTORY_MASK,
    IN_CLOSE_WRITE,
    Event,
    Notifier,
    WatchError,
    inotify_available,
)

pytestmark = pytest.mark.part("inotify", inotify_available(),
                              "cannot create an inotify instance")


@pytest.fixture
def notifier() -> Iterator[Notifier]:
    n = Notifier()
    yield n
    n.close()


def collect(n: Notifier, predicate: Callable[[List[Event]], bool],
            timeout: float = 10.0) -> List[Event]:
    """Read events until ``predicate(all events so far)`` holds or the deadline passes."""
    events: List[Event] = []
    deadline = time.monotonic() + timeout
    while not predicate(events) and time.monotonic() < deadline:
        events.extend(n.read(0.2))
    return events


def inotify_fds() -> int:
    count = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") == "anon_inode:inotify":
                count += 1
        except OSError:
            continue
    return count


def test_create_write_delete_are_reported(notifier: Notifier, tmp_path) -> None:
    wd = notifier.add_watch(str(tmp_path))
    target = tmp_path / "a.txt"
    target.write_text("x")
    target.unlink()
    events = collect(notifier, lambda ev: any(e.deleted for e in ev))
    mine = [e for e in events if e.wd == wd and e.name == "a.txt"]
    assert any(e.created for e in mine)
    assert any(e.mask & IN_CLOSE_WRITE and e.written for e in mine)
    assert any(e.deleted for e in mine)
    assert all(e.path == str(target) for e in mine)
    assert "IN_CREATE" in mine[0].mask_names()


def test_moves_count_as_created_and_deleted(notifier: Notifier, tmp_path) -> None:
    watched = tmp_path / "watched"
    outside = tmp_path / "outside"
    watched.mkdir()
    outside.mkdir()
    (outside / "moved").mkdir()
    notifier.add_watch(str(watched))
    os.rename(outside / "moved", watched / "moved")
    events = collect(notifier, lambda ev: any(e.created for e in ev))
    arrived = [e for e in events if e.name == "moved"]
    assert arrived and arrived[0].created and arrived[0].is_dir and not arrived[0].deleted
    os.rename(watched / "moved", outside / "back")
    events = collect(notifier, lambda ev: any(e.deleted for e in ev))
    left = [e for e in events if e.name == "moved"]
    assert left and left[0].deleted and not left[0].created


def test_same_path_shares_one_watch_until_last_user(notifier: Notifier, tmp_path) -> None:
    first = notifier.add_watch(str(tmp_path))
    second = notifier.add_watch(str(tmp_path), DIRECTORY_MASK)
    assert first == second
    assert notifier.watch_count == 1
    notifier.remove_watch(first)
    assert notifier.watch_count == 1
    (tmp_path / "still").write_text("")
    assert collect(notifier, lambda ev: any(e.name == "still" for e in ev))
    notifier.remove_watch(second)
    assert notifier.watch_count == 0
    assert notifier.path_of(first) is None


def test_deleted_directory_reports_watch_gone(notifier: Notifier, tmp_path) -> None:
    sub = tmp_path / "sub"
    sub.mkdir()
    wd = notifier.add_watch(str(sub))
    sub.rmdir()
    events = collect(notifier, lambda ev: any(e.wd == wd and e.watch_gone for e in ev))
    assert any(e.wd == wd and e.watch_gone for e in events)
    collect(notifier, lambda ev: notifier.path_of(wd) is None, timeout=5)
    assert notifier.path_of(wd) is None


def test_missing_path_raises_watch_error(notifier: Notifier, tmp_path) -> None:
    missing = str(tmp_path / "nope")
    with pytest.raises(WatchError) as info:
        notifier.add_watch(missing)
    assert info.value.missing
    assert not info.value.limit_reached
    assert missing in str(info.value)


def test_nul_byte_path_raises_watch_error(notifier: Notifier, tmp_path) -> None:
    with pytest.raises(WatchError) as info:
        notifier.add_watch(str(tmp_path) + "/a\0b")
    assert "NUL" in info.value.reason


def test_read_times_out_empty(notifier: Notifier, tmp_path) -> None:
    notifier.add_watch(str(tmp_path))
    assert notifier.read(0.01) == []


def test_wake_interrupts_blocking_read(notifier: Notifier) -> None:
    results: List[List[Event]] = []
    reader = threading.Thread(target=lambda: results.append(notifier.read(None)))
    reader.start()
    notifier.wake()
    reader.join(10)
    assert not reader.is_alive()
    assert results == [[]]


def test_one_descriptor_per_notifier_and_closed_on_close(tmp_path) -> None:
    before = inotify_fds()
    n = Notifier()
    for index in range(20):
        path = tmp_path / f"d{index}"
        path.mkdir()
        n.add_watch(str(path))
    assert inotify_fds() == before + 1
    n.close()
    assert inotify_fds() == before
    n.wake()  # harmless after close
    assert n.read(0) == []


def test_works_without_inotifyx(tmp_path) -> None:
    script = (
        "import sys, os\n"
        "sys.modules['inotifyx'] = None\n"
        "from scingestor.watch.inotify import Notifier, inotify_available\n"
        "assert inotify_available()\n"
        "n = Notifier()\n"
        f"n.add_watch({str(tmp_path)!r})\n"
        f"open(os.path.join({str(tmp_path)!r}, 'f'), 'w').close()\n"
        "ev = []\n"
        "for _ in range(50):\n"
        "    ev += n.read(0.2)\n"
        "    if ev: break\n"
        "print(sorted({e.name for e in ev}))\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['f']"
