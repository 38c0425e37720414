"""The daemon and ``scicat_dataset_ingest`` agree on which dataset lists exist.

A running :class:`IngestorService` watches a tree; ``find_lists`` (the
re-ingestion tool's discovery) walks the same tree with the same configuration;
both must name the same lists: base-dir beamtimes, the depth limit,
``watch_scandir_subdir``, and nothing below a blacklisted directory.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Iterator, List, Set

import pytest

from scingestor.config import config_from_mapping
from scingestor.reingest import Summary, find_lists
from scingestor.service import IngestorService
from scingestor.testing.setup import wait_for

IDS = {"own": "99000001", "base": "99000002", "typed": "99000003", "banned": "99000004",
       "black": "99000005"}


def beamtime(directory: Path, beamtime_id: str, proposal_type: str = "I") -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"beamtime-metadata-{beamtime_id}.json").write_text(json.dumps(
        {"beamtimeId": beamtime_id, "proposalId": "1", "beamline": "p00",
         "proposalType": proposal_type}))


def dataset_list(directory: Path, beamtime_id: str) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"scicat-datasets-{beamtime_id}.lst"
    path.write_text("")  # no scan: the daemon has nothing to send
    return str(path)


@pytest.fixture
def layout(tmp_path: Path) -> Dict[str, Any]:
    """Two beamtimes worth following (one configured, one below the base dir) and decoys."""
    own, base = tmp_path / "own", tmp_path / "base"
    bt = base / "bt"
    beamtime(own, IDS["own"])
    beamtime(bt, IDS["base"])
    lists: Dict[str, str] = {}
    for name, directory in {
        "own/a": own / "a",
        "own/a/b": own / "a" / "b",
        "own/x/y/z": own / "x" / "y" / "z",
    }.items():
        lists[name] = dataset_list(directory, IDS["own"])
    for name, directory in {
        "bt/raw": bt / "raw",
        "bt/raw/sub": bt / "raw" / "sub",
        "bt/deep/l1/l2/l3": bt / "deep" / "l1" / "l2" / "l3",
        "bt/processed": bt / "processed",
        "bt/processed/run1": bt / "processed" / "run1",
        "bt/processed/run1/x": bt / "processed" / "run1" / "x",
        "bt/scratch/user/scans": bt / "scratch" / "user" / "scans",
    }.items():
        lists[name] = dataset_list(directory, IDS["base"])
    dataset_list(bt / "foreign", IDS["own"])  # another beamtime's list name
    os.symlink(str(bt / "raw"), str(bt / "link"))  # links below a beamtime are not followed
    beamtime(base / "typed", IDS["typed"], proposal_type="P")
    dataset_list(base / "typed" / "raw", IDS["typed"])
    beamtime(base / "banned", IDS["banned"])
    dataset_list(base / "banned" / "raw", IDS["banned"])
    dataset_list(base / "no-beamtime" / "raw", IDS["base"])
    black = tmp_path / "black"
    beamtime(black, IDS["black"])
    dataset_list(black / "raw", IDS["black"])
    id_blacklist = tmp_path / "ids.txt"
    id_blacklist.write_text(IDS["banned"] + "\n")
    return {
        "lists": lists,
        "config": {
            "beamtime_dirs": [str(own), str(black)],
            "beamtime_base_dir": str(base),
            "beamtimeid_blacklist_file": str(id_blacklist),
            "scandir_blacklist": [str(bt / "processed"), str(bt / "scratch"), str(black)],
            "ingestion_delay_time": 0,
        },
    }


@pytest.fixture
def started(scicat_server: Any) -> Iterator[List[IngestorService]]:
    services: List[IngestorService] = []
    yield services
    for service in services:
        service.stop()


CASES = [
    # max_scandir_depth, watch_scandir_subdir, poll_only -> lists (keys of ``layout``)
    (-1, False, False, {"own/a", "own/x/y/z", "bt/raw", "bt/deep/l1/l2/l3"}),
    (-1, True, False, {"own/a", "own/a/b", "own/x/y/z", "bt/raw", "bt/raw/sub",
                       "bt/deep/l1/l2/l3"}),
    (2, True, False, {"own/a", "own/a/b", "bt/raw", "bt/raw/sub"}),
    (1, False, True, {"own/a", "bt/raw"}),
    (0, True, False, set()),
]


@pytest.mark.parametrize("depth, subdirs, poll_only, expected", CASES)
def test_reingestion_visits_exactly_the_lists_the_daemon_watches(
    layout, scicat_server, started, depth, subdirs, poll_only, expected
) -> None:
    cfg = config_from_mapping(dict(
        layout["config"], scicat_url=scicat_server.url, max_scandir_depth=depth,
        watch_scandir_subdir=subdirs, poll_only=poll_only))
    service = IngestorService(cfg)
    started.append(service)
    service.start()
    watched: Set[str] = set(service.watched().list_files)

    summary = Summary()
    visited = [ctx.list_path for ctx in find_lists(cfg, summary)]

    assert set(visited) == watched
    assert len(visited) == len(set(visited))
    assert watched == {layout["lists"][key] for key in expected}
    assert summary.problems == []


def test_agreement_holds_after_the_tree_changed(layout, scicat_server, started) -> None:
    cfg = config_from_mapping(dict(layout["config"], scicat_url=scicat_server.url))
    service = IngestorService(cfg)
    started.append(service)
    service.start()
    base = Path(layout["config"]["beamtime_base_dir"])
    beamtime(base / "later", "99000006")
    added = dataset_list(base / "later" / "raw", "99000006")
    stopper = dataset_list(base / "bt", IDS["base"])  # descent now stops at the beamtime dir

    def agree() -> bool:
        return set(service.watched().list_files) == {
            ctx.list_path for ctx in find_lists(cfg, Summary())}

    wait_for(lambda: agree() and added in service.watched().list_files, timeout=10,
             what="daemon and find_lists agree on the changed tree")
    assert set(service.watched().list_files) == {added, stopper, *(
        layout["lists"][key] for key in ("own/a", "own/x/y/z"))}
