"""Three requests for a new scan, existence checks only when it may have been sent before.

README "SciCat access": a line that is neither in the ingested list nor in the
intent journal (``<ingested list>.intent``) was certainly never sent.
"""

from __future__ import annotations

import os

import pytest

from scingestor.journal import journal_path
from scingestor.testing.setup import wait_for

BT = "99001234"

# every test here runs against both SciCat API versions of the dev server
pytestmark = pytest.mark.usefixtures("api_version")


def api_calls(server):
    return [(r.method, r.v3_path) for r in server.requests if "login" not in r.path.lower()]


def counts(server, pid):
    return (1 if server.dataset(pid) else 0, len(server.datablocks(pid)),
            len(server.attachments(pid)))


def test_a_new_scan_costs_three_requests(beamtime_factory, scicat_server, service_factory):
    f = beamtime_factory
    for name in ("scan_00001", "scan_00002"):
        f.write_nexus_scan(name, png=True, detector_files=1)
    f.append_list(None, "scan_00001", "scan_00002")
    service = service_factory()
    wait_for(lambda: len(f.read_ingested()) == 2)
    service.wait_idle()
    calls = api_calls(scicat_server)
    assert [method for method, _ in calls] == ["POST"] * 6
    # per scan: the dataset first, then its datablock and thumbnail (those two at once;
    # scans may overlap: max_scans_in_flight)
    for name in ("scan_00001", "scan_00002"):
        mine = [r.v3_path for r in scicat_server.requests if "login" not in r.path.lower()
                and name in (r.body + r.v3_path)]
        assert mine[0] == "Datasets"
        assert sorted(mine[1:]) == sorted(["OrigDatablocks",
                                           f"Datasets/{BT}%2F{name}/Attachments"])
    for name in ("scan_00001", "scan_00002"):
        assert counts(scicat_server, f"{BT}/{name}") == (1, 1, 1)
    journal = open(journal_path(f.ingested_path()), encoding="utf-8").read().split("\n")
    assert journal[:2] == ["scan_00001", "scan_00002"]


@pytest.mark.parametrize("lost", ["Datasets$", "OrigDatablocks$", "Attachments$"])
def test_a_lost_answer_to_any_post_duplicates_nothing(beamtime_factory, scicat_server,
                                                      service_factory, lost):
    f = beamtime_factory
    f.write_nexus_scan("scan_00001", png=True)
    scicat_server.faults.drop_next(1, method="POST", path=lost)
    f.append_list(None, "scan_00001")
    service_factory()
    wait_for(lambda: f.read_ingested() and float(f.read_ingested()[-1].split()[2]) > 0)
    (dropped,) = [r for r in scicat_server.requests if r.dropped]
    assert dropped.status in (200, 201)  # it went in, only the answer was lost
    assert counts(scicat_server, f"{BT}/scan_00001") == (1, 1, 1)


def test_after_a_crash_between_intent_and_post_the_server_is_asked(
        beamtime_factory, scicat_server, service_factory):
    f = beamtime_factory
    f.write_nexus_scan("scan_00001", png=True)
    f.write_nexus_scan("scan_00002", png=True)
    f.append_list(None, "scan_00001", "scan_00002")
    path = journal_path(f.ingested_path())
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("scan_00001\nscan_0")  # the crash tore the second record
    service = service_factory()
    wait_for(lambda: len(f.read_ingested()) == 2)
    service.wait_idle()
    calls = api_calls(scicat_server)
    first = [call for call in calls if "scan_00001" in call[1] or call == ("POST", "Datasets")]
    assert first[0] == ("GET", f"Datasets/{BT}%2Fscan_00001")  # checked before posting
    assert ("GET", f"Datasets/{BT}%2Fscan_00002") not in calls  # never tried: posted at once
    for name in ("scan_00001", "scan_00002"):
        assert counts(scicat_server, f"{BT}/{name}") == (1, 1, 1)


def test_a_dataset_sent_by_someone_else_is_compared_not_duplicated(
        beamtime_factory, scicat_server, service_factory, tmp_path):
    f = beamtime_factory
    f.write_nexus_scan("scan_00001", png=True)
    f.append_list(None, "scan_00001")
    first = service_factory(ingestor_var_dir=str(tmp_path / "host1"))
    wait_for(lambda: len(scicat_server.attachments(f"{BT}/scan_00001")) == 1)
    first.stop()
    scicat_server.clear_requests()
    # another host with its own ingested list and journal: no record of this scan there
    second = service_factory(ingestor_var_dir=str(tmp_path / "host2"))
    wait_for(lambda: any(r.status == 409 for r in scicat_server.requests))
    second.wait_idle()
    assert counts(scicat_server, f"{BT}/scan_00001") == (1, 1, 1)
    assert [r for r in scicat_server.requests if r.method == "PATCH"] == []
