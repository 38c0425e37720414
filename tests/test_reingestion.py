"""Re-ingestion that never duplicates, current metadata, clear outcomes, quick resumption.

What SciCat holds afterwards is checked, not what was logged (README "SciCat
access", "What we changed").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from scingestor.status import State
from scingestor.testing.setup import wait_for, write_config

BT = "99001234"

# every test here runs against both SciCat API versions of the dev server
pytestmark = pytest.mark.usefixtures("api_version")
REINGEST = [sys.executable, "-m", "scingestor.cli.reingest"]


def writes(server, method):
    return [r for r in server.requests_matching(method)
            if 200 <= r.status < 300 and "login" not in r.path.lower()]


def make_older(path, seconds=60):
    """Give ``path`` an mtime ``seconds`` in the past (no sleeping for newer mtimes)."""
    stamp = time.time() - seconds
    os.utime(path, (stamp, stamp))


def ingest_first(f, scicat_server, service_factory, name="scan_00001", **overrides):
    f.write_nexus_scan(name, png=True, detector_files=1)
    f.append_list(None, name)
    service = service_factory(**overrides)
    wait_for(lambda: len(f.read_ingested()) == 1)
    service.wait_idle()
    return service


def reingest_line(f, service, name="scan_00001", count=2):
    f.append_list(None, f"{name}:{time.time()}")
    wait_for(lambda: len(f.read_ingested()) == count)
    service.wait_idle()


def test_unchanged_scan_sends_no_patch(beamtime_factory, scicat_server, service_factory):
    f = beamtime_factory
    service = ingest_first(f, scicat_server, service_factory)
    scicat_server.clear_requests()
    reingest_line(f, service)
    assert writes(scicat_server, "PATCH") == []
    assert writes(scicat_server, "POST") == []
    assert len(scicat_server.datablocks(f"{BT}/scan_00001")) == 1
    assert len(scicat_server.attachments(f"{BT}/scan_00001")) == 1


def test_rewritten_master_file_gives_current_metadata(beamtime_factory, scicat_server,
                                                      service_factory):
    f = beamtime_factory
    service = ingest_first(f, scicat_server, service_factory)
    dataset_file = os.path.join(f.scandir, "scan_00001.scan.json")
    assert "second sample" not in json.dumps(scicat_server.dataset(f"{BT}/scan_00001"))
    make_older(dataset_file)
    f.write_nexus_scan("scan_00001", png=True, detector_files=1, title="second sample run")
    reingest_line(f, service)
    assert "second sample run" in open(dataset_file, encoding="utf-8").read()
    assert "second sample run" in json.dumps(scicat_server.dataset(f"{BT}/scan_00001"))
    assert len(scicat_server.datasets()) == 1
    assert len(scicat_server.datablocks(f"{BT}/scan_00001")) == 1


def test_dataset_file_edited_after_the_master_is_kept(beamtime_factory, scicat_server,
                                                      service_factory):
    f = beamtime_factory
    service = ingest_first(f, scicat_server, service_factory)
    dataset_file = os.path.join(f.scandir, "scan_00001.scan.json")
    make_older(os.path.join(f.scandir, "scan_00001.nxs"))
    document = json.load(open(dataset_file, encoding="utf-8"))
    document["description"] = "edited by hand"
    with open(dataset_file, "w", encoding="utf-8") as handle:
        json.dump(document, handle)
    reingest_line(f, service)
    assert json.load(open(dataset_file, encoding="utf-8"))["description"] == "edited by hand"
    assert scicat_server.dataset(f"{BT}/scan_00001")["description"] == "edited by hand"


def test_rejected_scan_is_recorded_with_minus_one(beamtime_factory, scicat_server,
                                                  service_factory):
    f = beamtime_factory
    f.write_nexus_scan("scan_00001")
    f.write_nexus_scan("scan_00002")
    scicat_server.faults.fail_next(1, status=400, body={"message": ["owner must be a string"]},
                                   method="POST", path="Datasets$")
    f.append_list(None, "scan_00001", "scan_00002")
    service = service_factory(retry_backoff_initial=300, retry_backoff_max=600)
    wait_for(lambda: len(f.read_ingested()) == 2)
    records = {line.split(" ")[0]: line.split(" ")[1:] for line in f.read_ingested()}
    assert records["scan_00001"] == ["-1", "0", "0"]
    assert float(records["scan_00002"][0]) > 0
    status = service.status()
    assert status.state is State.ALARM and "owner must be a string" in status.last_error


def test_summary_names_each_failed_scan_with_the_server_message(beamtime_factory,
                                                                 scicat_server):
    f = beamtime_factory
    for name in ("scan_00001", "scan_00002"):
        f.write_nexus_scan(name)
    f.append_list(None, "scan_00001", "scan_00002")
    scicat_server.faults.fail_next(1, status=400, body={"message": "contactEmail is invalid"},
                                   method="POST", path="OrigDatablocks$")
    cfg = write_config(f, scicat_server.url)
    result = subprocess.run(REINGEST + ["-c", cfg], capture_output=True, text=True,
                            timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 1
    failed = [line for line in result.stderr.splitlines() if "failed:" in line]
    assert len(failed) == 1
    assert "scan_00001" in failed[0] and "contactEmail is invalid" in failed[0]
    records = {line.split(" ")[0]: line.split(" ")[1:] for line in f.read_ingested()}
    assert records["scan_00001"][1] == "-1"
    assert len(scicat_server.datasets()) == 2


def test_outage_ends_without_waiting_for_the_backoff(beamtime_factory, scicat_server,
                                                     service_factory):
    f = beamtime_factory
    for name in ("scan_00001", "scan_00002"):
        f.write_nexus_scan(name)
    # a back-off of minutes: only the probe can bring the scans in within the wait below
    service = service_factory(retry_backoff_initial=300, retry_backoff_max=600)
    scicat_server.faults.refuse_connections()
    f.append_list(None, "scan_00001", "scan_00002")
    wait_for(lambda: service.status().state is State.ALARM, timeout=20)
    scicat_server.faults.clear()  # the listener opens again
    wait_for(lambda: len(scicat_server.datasets()) == 2, timeout=30)
    wait_for(lambda: service.status().state is State.ON, timeout=30)
    assert len(scicat_server.datablocks()) == 2


@pytest.mark.parametrize("status", [500, 502])
def test_5xx_outage_ends_without_waiting_for_the_backoff(beamtime_factory, scicat_server,
                                                         service_factory, status):
    f = beamtime_factory
    f.write_nexus_scan("scan_00001")
    scicat_server.faults.fail_next(4, status=status)
    f.append_list(None, "scan_00001")
    service_factory(retry_backoff_initial=300, retry_backoff_max=600)
    wait_for(lambda: len(scicat_server.datasets()) == 1, timeout=60)
    posts = writes(scicat_server, "POST")
    assert len([r for r in posts if r.v3_path == "Datasets"]) == 1


def write_block(path, name, size):
    block = {"size": size, "dataFileList": [
        {"path": name, "size": size, "time": "2024-03-05T10:05:00+01:00"}]}
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(block, handle)
    return str(path)


@pytest.mark.devserver(datablock_delete_allowed=False)
def test_refused_delete_fails_the_scan_without_duplicates_or_patch_storm(
        beamtime_factory, scicat_server, service_factory, tmp_path):
    f = beamtime_factory
    f.write_nexus_scan("scan_00001")
    # a generator that makes one block per detector (a JSON list of block files)
    blocks = [write_block(tmp_path / f"b{i}.json", f"det{i}.cbf", 10 + i) for i in (1, 2)]
    listing = os.path.join(f.scandir, "scan_00001.origdatablock.json")
    with open(listing, "w", encoding="utf-8") as handle:
        json.dump(blocks, handle)
    f.append_list(None, "scan_00001")
    service = service_factory(retry_backoff_initial=0.2, retry_backoff_max=0.4)
    wait_for(lambda: len(scicat_server.datablocks(f"{BT}/scan_00001")) == 2)
    service.wait_idle()
    scicat_server.clear_requests()
    with open(listing, "w", encoding="utf-8") as handle:  # one detector less
        json.dump(blocks[:1], handle)
    f.append_list(None, f"scan_00001:{time.time()}")
    wait_for(lambda: len(scicat_server.requests_matching("DELETE")) >= 3, timeout=30)
    status = service.status()
    assert status.state is State.ALARM and "DELETE_GROUPS" in status.last_error
    assert len(scicat_server.datablocks(f"{BT}/scan_00001")) == 2
    assert writes(scicat_server, "POST") == []
    assert scicat_server.requests_matching("PATCH", "Datasets/") == []
    last = f.read_ingested()[-1].split(" ")
    assert last[0].startswith("scan_00001:") and last[2] == "-1"
