"""The status snapshot carries counts and a version of what is watched; the lists come on demand.

Real directories, a real :class:`Discovery` (polling, driven by hand) and a real service
with the dev server. The snapshot is made on every status change, so its size must not
depend on how many directories are watched (docs/architecture.md, "Decisions").
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from typing import Any, List, Set

from scingestor.beamtime import Beamtime, ScanDirContext
from scingestor.config import config_from_mapping
from scingestor.status import StatusSnapshot
from scingestor.testing.setup import wait_for
from scingestor.watch import Discovery, WatchCounts

BT = "99001234"
MANY = 400


class _Sink:
    def __init__(self) -> None:
        self.found: List[str] = []

    def beamtime_added(self, bt: Beamtime) -> None:
        pass

    def beamtime_removed(self, path: str) -> None:
        pass

    def list_found(self, ctx: ScanDirContext) -> None:
        self.found.append(ctx.list_path)

    def list_changed(self, ctx: ScanDirContext) -> None:
        pass

    def list_removed(self, ctx: ScanDirContext) -> None:
        pass


def _beamtime_file(directory: Any) -> str:
    path = os.path.join(str(directory), f"beamtime-metadata-{BT}.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"beamtimeId": BT, "proposalId": "11112222", "beamline": "p00",
                   "proposalType": "I"}, handle)
    return path


def _dirs_on_disk(top: str) -> Set[str]:
    return {root for root, _dirs, _files in os.walk(top)}


def test_discovery_counts_and_version_follow_the_watched_set(tmp_path) -> None:
    bt = tmp_path / "beamtime"
    bt.mkdir()
    btfile = _beamtime_file(bt)
    for index in range(MANY):
        (bt / f"scan_{index:05d}").mkdir()
    discovery = Discovery(config_from_mapping(
        {"beamtime_dirs": [str(bt)], "scandir_blacklist": [], "poll_only": True}), _Sink())
    assert discovery.counts() == WatchCounts("polling", 0, 0, 0)
    discovery.scan_all()
    counts = discovery.counts()
    assert (counts.beamtime_files, counts.scan_dirs) == (1, MANY + 1)  # + the beamtime dir
    assert counts.version > 0
    # the lists on demand: sorted and complete
    scan_dirs = discovery.scan_dirs()
    assert scan_dirs == sorted(_dirs_on_disk(str(bt)))
    assert discovery.beamtime_files() == [btfile]
    assert discovery.is_scan_dir(str(bt / "scan_00007"))
    assert not discovery.is_scan_dir(str(bt / "nothing"))

    discovery.scan_all()  # nothing changed on disk: same version
    assert discovery.counts() == counts

    (bt / "added").mkdir()
    discovery.scan_all()
    added = discovery.counts()
    assert added.scan_dirs == MANY + 2 and added.version > counts.version
    assert str(bt / "added") in discovery.scan_dirs()

    shutil.rmtree(bt / "scan_00003")
    discovery.scan_all()
    removed = discovery.counts()
    assert removed.scan_dirs == MANY + 1 and removed.version > added.version
    assert str(bt / "scan_00003") not in discovery.scan_dirs()

    os.unlink(btfile)  # the beamtime goes, with its whole scan tree
    discovery.scan_all()
    gone = discovery.counts()
    assert (gone.beamtime_files, gone.scan_dirs) == (0, 0) and gone.version > removed.version
    assert discovery.scan_dirs() == [] and discovery.beamtime_files() == []

    _beamtime_file(bt)
    discovery.scan_all()
    back = discovery.counts()
    assert (back.beamtime_files, back.scan_dirs) == (1, MANY + 1)
    assert back.version > gone.version
    discovery.close()


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool))


def test_status_snapshot_has_counts_not_lists(beamtime_factory, service_factory) -> None:
    f = beamtime_factory
    for index in range(MANY):
        f.make_scandir(f"scans/scan_{index:05d}")
    open(f.list_path(), "a").close()
    service = service_factory()
    events: List[StatusSnapshot] = []
    service.subscribe(events.append)
    status = service.status()
    expected = sorted(_dirs_on_disk(f.beamtime_dir))
    assert len(expected) > MANY
    assert status.watched_scandir_count == len(expected)
    assert status.watched_beamtime_count == 1
    # every field is a scalar, but the open measurements (one entry per open measurement)
    for item in dataclasses.fields(StatusSnapshot):
        value = getattr(status, item.name)
        assert _scalar(value) or item.name == "current_measurements", item.name
    # the lists, asked for: sorted and complete
    assert service.watched_scandirs() == expected
    assert service.watched_beamtimes() == [f.metadata_path]
    size = len(status.to_json())

    version = status.watch_version
    for index in range(MANY):  # as many directories again: the snapshot stays as big
        f.make_scandir(f"more/scan_{index:05d}")
    total = len(expected) + MANY + 1
    wait_for(lambda: service.status().watched_scandir_count == total, timeout=30)
    grown = service.status()
    assert grown.watch_version != version
    assert abs(len(grown.to_json()) - size) < 20  # digits of the counts and the version
    assert service.watched_scandirs() == sorted(_dirs_on_disk(f.beamtime_dir))
    assert events and events[-1].watched_scandir_count == total  # subscribers told

    version = grown.watch_version
    shutil.rmtree(os.path.join(f.beamtime_dir, "more"))
    wait_for(lambda: service.status().watched_scandir_count == len(expected), timeout=30)
    assert service.status().watch_version not in (version, 0)
    assert service.watched_scandirs() == expected

    service.stop()
    stopped = service.status()
    assert (stopped.watched_scandir_count, stopped.watched_beamtime_count) == (0, 0)
    assert service.watched_scandirs() == [] and service.watched_beamtimes() == []
