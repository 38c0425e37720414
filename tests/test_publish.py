"""DatasetPublisher against the development server over HTTP on 127.0.0.1."""

from __future__ import annotations

import copy
import json
import logging

import pytest

from scingestor.config import config_from_mapping
from scingestor.credentials import CredentialSource
from scingestor.scicat.api import to_v4_dataset
from scingestor.scicat.client import SciCatClient
from scingestor.scicat.errors import (
    DeleteForbiddenError,
    InvalidDocumentError,
    SciCatConnectionError,
    SciCatError,
    SciCatForbiddenError,
)
from scingestor.scicat.publish import (
    DatasetPublisher,
    differences,
    format_proposal_id,
    next_version,
)

logger = logging.getLogger(__name__)

# every test here runs against both SciCat API versions of the dev server
pytestmark = pytest.mark.usefixtures("api_version")

BT = "99001234"
PID = f"{BT}/myscan_00001"
PROPOSAL = "11112222.99001234"
ENC_PID = "99001234%2Fmyscan_00001"

DATASET = {
    "accessGroups": ["99001234-dmgt", "99001234-clbt", "p00dmgt"],
    "contactEmail": "pi@example.org",
    "creationLocation": "/DESY/PETRA III/P00",
    "creationTime": "2024-03-05T10:05:00+01:00",
    "datasetName": "myscan_00001",
    "description": "demo energy scan",
    "endTime": "2024-03-05T10:05:00+01:00",
    "instrumentId": "/petra3/p00",
    "isPublished": False,
    "keywords": ["scan"],
    "owner": "Lead",
    "ownerEmail": "leader@example.org",
    "ownerGroup": "99001234-dmgt",
    "pid": PID,
    "principalInvestigator": "applicant@example.org",
    "proposalId": PROPOSAL,
    "scientificMetadata": {"DOOR_proposalId": "11112222", "beamtimeId": BT,
                           "detector": {"distance": {"unit": "m", "value": 1.25}}},
    "sourceFolder": "/asap3/petra3/gpfs/p00/2024/data/99001234/raw",
    "techniques": [],
    "type": "raw",
}


def datablock(*files, pid: str = PID) -> dict:
    entries = [{"path": path, "size": size, "time": "2024-03-05T10:05:00+01:00",
                "perm": "-rw-r--r--", "uid": "root", "gid": "root"} for path, size in files]
    return {"accessGroups": ["99001234-dmgt"], "dataFileList": entries, "datasetId": pid,
            "ownerGroup": "99001234-dmgt", "size": sum(size for _, size in files)}


def attachment(thumbnail: str) -> dict:
    return {"accessGroups": ["99001234-dmgt"], "caption": "", "ownerGroup": "99001234-dmgt",
            "thumbnail": thumbnail}


def make_publisher(server, tmp_path, **extra) -> DatasetPublisher:
    data = {"scicat_url": server.url, "scicat_users_login_path": "auth/login",
            "retry_backoff_initial": 0.001, "retry_backoff_max": 5,
            "max_request_tries_number": 3}
    data.update(extra)
    cfg = config_from_mapping(data)
    path = tmp_path / "pwd"
    path.write_text(json.dumps({"username": "ingestor", "password": "12342345"}))
    return DatasetPublisher(cfg, SciCatClient(cfg, CredentialSource(str(path), "ingestor")))


def ingest(publisher, doc, measurement=""):
    return publisher.ingest_dataset(doc, beamtime_id=BT, proposal_id_expected=PROPOSAL,
                                    measurement=measurement)


def api_requests(server):
    """(method, v3 path) of the recorded requests, login excluded (either API version)."""
    return [(r.method, r.v3_path) for r in server.requests if not r.path.endswith("/login")]


def changed(kind: str) -> dict:
    doc = copy.deepcopy(DATASET)
    if kind == "core":
        doc["owner"] = "Someone Else"
    elif kind == "scientific":
        doc["scientificMetadata"]["energy"] = {"unit": "keV", "value": 8.9}
    return doc


# -- pure helpers -------------------------------------------------------------------------

def test_next_version_and_proposal_pattern():
    assert next_version("99/scan") == "99/scan/2"
    assert next_version("99/scan/2") == "99/scan/3"
    assert next_version("99/scan/v") == "99/scan/v/2"
    assert format_proposal_id("{proposalid}.{beamtimeId}", "111", "99") == "111.99"


def test_differences_uses_dotted_skip_paths():
    server = {"a": 1, "meta": {"x": 1, "y": 2}, "createdAt": "t", "unset": None}
    assert differences(server, {"a": 1, "meta": {"x": 1, "y": 2}}, ["createdAt"]) == []
    assert differences(server, {"a": 1, "meta": {"x": 1, "y": 3}}, ["createdAt"]) == ["meta.y"]
    assert differences(server, {"a": 1, "meta": {"x": 1, "y": 3}},
                       ["createdAt", "meta.y"]) == []
    # what only the server has is its own business (server-managed fields) ...
    assert differences(server, {"a": 1, "meta": {"x": 1}}, []) == []
    assert differences({"a": 1}, {"a": 1, "b": 2}) == ["b"]
    # ... except an entry of the scientific metadata that the scan no longer has
    assert differences({"x": 1, "y": 2}, {"x": 1}, (), "scientificMetadata") == [
        "scientificMetadata.y"]


# -- ingest_dataset ---------------------------------------------------------------------

def test_new_dataset_is_checked_then_posted(scicat_server, tmp_path):
    publisher = make_publisher(scicat_server, tmp_path)
    result = ingest(publisher, DATASET)
    assert (result.pid, result.action, result.created) == (PID, "created", True)
    assert api_requests(scicat_server) == [("GET", f"Datasets/{ENC_PID}"),
                                           ("POST", "Datasets")]
    post = scicat_server.requests_matching("POST", "Datasets$")[0]
    expected = DATASET if scicat_server.api_version == "v3" else to_v4_dataset(DATASET)
    assert post.json() == expected
    assert scicat_server.dataset(PID)["owner"] == "Lead"


def test_existing_unchanged_dataset_is_success_with_pid(scicat_server, tmp_path):
    publisher = make_publisher(scicat_server, tmp_path)
    ingest(publisher, DATASET)
    scicat_server.clear_requests()
    touched = changed("none")
    touched["techniques"] = [{"name": "saxs", "pid": "x"}]  # in the skip list
    touched["creationTime"] = "2025-01-01T00:00:00+01:00"  # in the skip list
    result = ingest(publisher, touched)
    assert (result.pid, result.action, result.created) == (PID, "unchanged", False)
    assert api_requests(scicat_server) == [("GET", f"Datasets/{ENC_PID}")]


EXPECTED = {
    ("patch", "core"): "patched", ("patch", "scientific"): "patched",
    ("patch", "none"): "unchanged",
    ("mixed", "core"): "new_version", ("mixed", "scientific"): "patched",
    ("mixed", "none"): "unchanged",
    ("create", "core"): "new_version", ("create", "scientific"): "new_version",
    ("create", "none"): "unchanged",
    ("no", "core"): "skipped", ("no", "scientific"): "skipped", ("no", "none"): "skipped",
}


@pytest.mark.parametrize("strategy, change", sorted(EXPECTED))
def test_update_strategies(scicat_server, tmp_path, strategy, change):
    publisher = make_publisher(scicat_server, tmp_path, dataset_update_strategy=strategy)
    ingest(publisher, DATASET)
    scicat_server.clear_requests()
    doc = changed(change)
    result = ingest(publisher, doc)
    action = EXPECTED[(strategy, change)]
    assert result.action == action
    requests = api_requests(scicat_server)
    assert requests[0] == ("GET", f"Datasets/{ENC_PID}")
    original = scicat_server.dataset(PID)
    if action == "patched":
        assert result.pid == PID
        assert requests[1:] == [("PATCH", f"Datasets/{ENC_PID}")]
        body = scicat_server.requests_matching("PATCH")[0].json()
        assert "pid" not in body and "type" not in body
        assert original["owner"] == doc["owner"]
        assert original["scientificMetadata"] == doc["scientificMetadata"]
    elif action == "new_version":
        assert result.pid == f"{PID}/2" and result.created
        assert requests[1:] == [("GET", f"Datasets/{ENC_PID}%2F2"), ("POST", "Datasets")]
        version = scicat_server.dataset(f"{PID}/2")
        assert version["owner"] == doc["owner"]
        assert version["scientificMetadata"] == doc["scientificMetadata"]
        assert original["owner"] == DATASET["owner"]
    else:
        assert result.pid == PID
        assert requests[1:] == []
        assert original["owner"] == DATASET["owner"]
    assert len(scicat_server.datasets()) == (2 if action == "new_version" else 1)


@pytest.mark.devserver(pid_prefix="10.3204/")
def test_new_versions_count_up_and_are_not_duplicated(scicat_server, tmp_path):
    publisher = make_publisher(scicat_server, tmp_path, dataset_update_strategy="create",
                               dataset_pid_prefix="10.3204/")
    assert ingest(publisher, DATASET).pid == PID
    assert scicat_server.dataset("10.3204/" + PID) is not None
    second = ingest(publisher, changed("core"))
    assert (second.pid, second.action) == (f"{PID}/2", "new_version")
    third = changed("core")
    third["owner"] = "Third Owner"
    assert ingest(publisher, third).pid == f"{PID}/3"
    # the same document again (e.g. a retry after a crash) finds its version
    again = ingest(publisher, third)
    assert (again.pid, again.action) == (f"{PID}/3", "unchanged")
    pids = sorted(d["pid"] for d in scicat_server.datasets())
    assert pids == [f"10.3204/{PID}", f"10.3204/{PID}/2", f"10.3204/{PID}/3"]
    assert scicat_server.dataset(f"10.3204/{PID}/3")["owner"] == "Third Owner"


def test_measurement_keyword_is_added_before_comparing(scicat_server, tmp_path):
    publisher = make_publisher(scicat_server, tmp_path)
    ingest(publisher, DATASET)
    assert ingest(publisher, DATASET, measurement="mycalib").action == "patched"
    assert scicat_server.dataset(PID)["keywords"] == ["scan", "mycalib"]
    assert ingest(publisher, DATASET, measurement="mycalib").action == "unchanged"


def test_measurement_keyword_not_forced_when_disabled(scicat_server, tmp_path):
    publisher = make_publisher(scicat_server, tmp_path, force_measurement_keyword=False)
    ingest(publisher, DATASET)
    assert ingest(publisher, DATASET, measurement="mycalib").action == "unchanged"


def test_fields_that_cannot_be_patched_are_left_out(scicat_server, tmp_path):
    publisher = make_publisher(scicat_server, tmp_path,
                               metadata_fields_cannot_be_patched=["description"])
    ingest(publisher, DATASET)
    doc = changed("core")
    doc["description"] = "new text"
    assert ingest(publisher, doc).action == "patched"
    body = scicat_server.requests_matching("PATCH")[0].json()
    assert set(body).isdisjoint({"description", "pid", "type"})
    assert scicat_server.dataset(PID)["description"] == DATASET["description"]


def test_lost_answer_to_post_then_409_means_it_went_in(scicat_server, tmp_path):
    publisher = make_publisher(scicat_server, tmp_path)
    scicat_server.faults.drop_next(1, method="POST", path="Datasets$")
    result = ingest(publisher, DATASET)
    assert result.pid == PID
    assert result.action == "unchanged"
    posts = scicat_server.requests_matching("POST", "Datasets$")
    assert [(r.dropped, r.status) for r in posts] == [(True, 201), (False, 409)]
    assert len(scicat_server.datasets()) == 1


def test_empty_2xx_answer_means_absent(scicat_server, tmp_path):
    publisher = make_publisher(scicat_server, tmp_path)
    scicat_server.faults.fail_next(1, status=200, body="", method="GET", path="Datasets/")
    assert ingest(publisher, DATASET).action == "created"


def test_other_existence_answers_are_errors(scicat_server, tmp_path):
    publisher = make_publisher(scicat_server, tmp_path)
    scicat_server.faults.fail_next(1, status=400, body={"message": "bad pid"}, method="GET")
    with pytest.raises(SciCatError, match="400 bad pid"):
        ingest(publisher, DATASET)
    assert scicat_server.requests_matching("POST", "Datasets") == []


@pytest.mark.devserver(restrict_ingestor=True)
def test_403_on_existence_check_is_reported_not_posted(scicat_server, tmp_path):
    scicat_server.server.store.insert("datasets", PID, dict(DATASET))
    publisher = make_publisher(scicat_server, tmp_path)
    with pytest.raises(SciCatForbiddenError, match="admin group"):
        ingest(publisher, DATASET)
    assert scicat_server.requests_matching("POST", "Datasets") == []


def test_validation_errors_name_the_field_and_send_nothing(scicat_server, tmp_path):
    publisher = make_publisher(scicat_server, tmp_path)
    wrong_proposal = dict(DATASET, proposalId="1.2")
    with pytest.raises(InvalidDocumentError, match="proposalId"):
        ingest(publisher, wrong_proposal)
    with pytest.raises(InvalidDocumentError, match="pid"):
        ingest(publisher, dict(DATASET, pid="99009999/myscan_00001"))
    with pytest.raises(InvalidDocumentError, match="pid"):
        ingest(publisher, {k: v for k, v in DATASET.items() if k != "pid"})
    assert scicat_server.requests == []
    # a derived dataset is not checked against the proposal id: it reaches the server
    with pytest.raises(SciCatError, match="400"):
        publisher.ingest_dataset({"pid": f"{BT}/mycalib", "type": "derived",
                                  "proposalId": "other"},
                                 beamtime_id=BT, proposal_id_expected=PROPOSAL)
    assert len(scicat_server.requests_matching("POST", "Datasets$")) == 1


# -- datablocks -------------------------------------------------------------------------

def test_datablocks_sync_twice_posts_once(scicat_server, tmp_path):
    publisher = make_publisher(scicat_server, tmp_path)
    ingest(publisher, DATASET)
    block = datablock(("myscan_00001.nxs", 100), pid="wrong")
    first = publisher.sync_datablocks(PID, [block], replace=False)
    second = publisher.sync_datablocks(PID, [block], replace=False)
    assert (first.posted, second.posted, second.kept) == (1, 0, 1)
    (stored,) = scicat_server.datablocks(PID)
    assert stored["datasetId"] == PID
    assert len(scicat_server.requests_matching("POST", "OrigDatablocks")) == 1


def test_empty_datablock_is_skipped_without_request(scicat_server, tmp_path):
    publisher = make_publisher(scicat_server, tmp_path)
    result = publisher.sync_datablocks(PID, [datablock()], replace=False)
    assert result.skipped == 1
    assert scicat_server.requests == []


def test_datablock_retry_after_lost_answer_does_not_duplicate(scicat_server, tmp_path):
    publisher = make_publisher(scicat_server, tmp_path)
    ingest(publisher, DATASET)
    blocks = [datablock(("a.nxs", 1)), datablock(("b.cbf", 2))]
    scicat_server.faults.drop_next(1, method="POST", path="OrigDatablocks")
    with pytest.raises(SciCatConnectionError):
        publisher.sync_datablocks(PID, blocks, replace=False)
    result = publisher.sync_datablocks(PID, blocks, replace=False)
    assert (result.posted, result.kept) == (1, 1)
    paths = sorted(b["dataFileList"][0]["path"] for b in scicat_server.datablocks(PID))
    assert paths == ["a.nxs", "b.cbf"]


def test_replace_deletes_stale_blocks_and_keeps_matching_ones(scicat_server, tmp_path):
    publisher = make_publisher(scicat_server, tmp_path)
    ingest(publisher, DATASET)
    keep, stale = datablock(("a.nxs", 1)), datablock(("b.cbf", 2))
    publisher.sync_datablocks(PID, [keep, stale], replace=False)
    kept_id = [b["id"] for b in scicat_server.datablocks(PID)
               if b["dataFileList"][0]["path"] == "a.nxs"]
    stale_id = [b["id"] for b in scicat_server.datablocks(PID)
                if b["dataFileList"][0]["path"] == "b.cbf"]
    grown = datablock(("b.cbf", 5))
    result = publisher.sync_datablocks(PID, [keep, grown], replace=True)
    # the stale block is rewritten in place (PATCH), nothing is posted or deleted
    assert (result.posted, result.kept, result.deleted, result.updated) == (0, 1, 0, 1)
    stored = scicat_server.datablocks(PID)
    assert sorted((b["dataFileList"][0]["path"], b["size"]) for b in stored) == [
        ("a.nxs", 1), ("b.cbf", 5)]
    assert sorted(b["id"] for b in stored) == sorted(kept_id + stale_id)
    surplus = publisher.sync_datablocks(PID, [keep], replace=True)
    assert (surplus.posted, surplus.kept, surplus.deleted) == (0, 1, 1)
    assert [b["id"] for b in scicat_server.datablocks(PID)] == kept_id


@pytest.mark.devserver(datablock_delete_allowed=False)
def test_refused_delete_names_the_setting_and_posts_nothing(scicat_server, tmp_path):
    publisher = make_publisher(scicat_server, tmp_path)
    ingest(publisher, DATASET)
    old = [datablock(("a.nxs", 1)), datablock(("b.nxs", 2)), datablock(("c.nxs", 3))]
    publisher.sync_datablocks(PID, old, replace=False)
    scicat_server.clear_requests()
    # one block changed, one block gone: the change is made in place, the removal refused
    with pytest.raises(DeleteForbiddenError, match="DELETE_GROUPS"):
        publisher.sync_datablocks(PID, [datablock(("a.nxs", 1)), datablock(("b.nxs", 5))],
                                  replace=True)
    # (under v4 a 403 first leads to one new login: that is the only POST)
    assert [r for r in scicat_server.requests_matching("POST") if "login" not in r.path] == []
    assert len(scicat_server.requests_matching("PATCH")) == 1
    stored = sorted((b["dataFileList"][0]["path"], b["size"])
                    for b in scicat_server.datablocks(PID))
    assert len(stored) == 3 and ("a.nxs", 1) in stored
    assert ("b.nxs", 5) in stored or ("c.nxs", 5) in stored  # rewritten, not added


@pytest.mark.parametrize("delete_allowed", [True, False])
def test_changed_block_is_rewritten_whatever_may_be_deleted(scicat_server, tmp_path,
                                                            delete_allowed):
    scicat_server.set_datablock_delete_allowed(delete_allowed)
    publisher = make_publisher(scicat_server, tmp_path)
    ingest(publisher, DATASET)
    publisher.sync_datablocks(PID, [datablock(("a.nxs", 1), ("a.cbf", 1))], replace=False)
    (before,) = scicat_server.datablocks(PID)
    for replace in (False, True):  # a plain retry and a re-ingestion alike
        grown = datablock(("a.nxs", 1), ("a.cbf", 1), ("a_2.cbf", 1 + replace))
        result = publisher.sync_datablocks(PID, [grown], replace=replace)
        assert (result.posted, result.updated, result.deleted) == (0, 1, 0)
        (after,) = scicat_server.datablocks(PID)
        assert after["id"] == before["id"] and len(after["dataFileList"]) == 3
    assert scicat_server.requests_matching("DELETE") == []
    assert scicat_server.dataset(PID)["numberOfFiles"] == 3


def test_failed_delete_is_an_error(scicat_server, tmp_path):
    publisher = make_publisher(scicat_server, tmp_path)
    ingest(publisher, DATASET)
    publisher.sync_datablocks(PID, [datablock(("a.nxs", 1)), datablock(("b.nxs", 1))],
                              replace=False)
    scicat_server.faults.fail_next(1, status=404, method="DELETE")
    with pytest.raises(SciCatError) as info:
        publisher.sync_datablocks(PID, [datablock(("a.nxs", 1))], replace=True)
    assert info.value.status == 404
    assert len(scicat_server.datablocks(PID)) == 2


# -- attachments ------------------------------------------------------------------------

def test_attachments_matched_by_thumbnail(scicat_server, tmp_path):
    publisher = make_publisher(scicat_server, tmp_path)
    ingest(publisher, DATASET)
    first = publisher.sync_attachments(PID, [attachment("data:one")], replace_all=False)
    again = publisher.sync_attachments(PID, [attachment("data:one")], replace_all=False)
    assert (first.posted, again.posted, again.kept) == (1, 0, 1)
    assert len(scicat_server.attachments(PID)) == 1
    post = scicat_server.requests_matching("POST", "Attachments")[0]
    assert post.v3_path == f"Datasets/{ENC_PID}/Attachments"
    if scicat_server.api_version == "v3":
        assert post.json()["datasetId"] == PID
    else:
        assert post.json()["relationships"] == [{"targetId": PID, "targetType": "dataset"}]
    # a new thumbnail is added; without replace_all the old one stays
    added = publisher.sync_attachments(PID, [attachment("data:two")], replace_all=False)
    assert (added.posted, added.deleted) == (1, 0)
    assert len(scicat_server.attachments(PID)) == 2


def test_attachments_replace_all_deletes_unmatched(scicat_server, tmp_path):
    publisher = make_publisher(scicat_server, tmp_path)
    ingest(publisher, DATASET)
    publisher.sync_attachments(PID, [attachment("data:one"), attachment("data:two")],
                               replace_all=False)
    result = publisher.sync_attachments(PID, [attachment("data:two"), attachment("data:3")],
                                        replace_all=True)
    if scicat_server.api_version == "v3":
        assert (result.posted, result.kept, result.deleted) == (1, 1, 1)
    else:
        assert (result.updated, result.kept, result.deleted) == (1, 1, 0)
    thumbs = sorted(a["thumbnail"] for a in scicat_server.attachments(PID))
    assert thumbs == ["data:3", "data:two"]
    if scicat_server.api_version == "v3":  # no safe update route: delete, then post
        (delete,) = scicat_server.requests_matching("DELETE")
        assert delete.path.startswith(f"/api/v3/Datasets/{ENC_PID}/Attachments/")
    else:  # the stale one is rewritten in place
        assert scicat_server.requests_matching("DELETE") == []
        assert len(scicat_server.requests_matching("PATCH", "/attachments/")) == 1


# -- proposals --------------------------------------------------------------------------

def test_proposal_groups_found(scicat_server, tmp_path):
    scicat_server.add_proposal({"proposalId": PROPOSAL, "ownerGroup": "mygroup",
                                "accessGroups": ["group1", "group2"]})
    publisher = make_publisher(scicat_server, tmp_path)
    assert publisher.fetch_proposal_groups("11112222", BT) == ("mygroup", ["group1", "group2"])


def test_proposal_pattern_and_encoding(scicat_server, tmp_path):
    scicat_server.add_proposal({"proposalId": "DESY/11112222", "ownerGroup": "g"})
    publisher = make_publisher(scicat_server, tmp_path,
                               scicat_proposal_id_pattern="DESY/{proposalId}")
    assert publisher.fetch_proposal_groups("11112222", BT) == ("g", None)
    (get,) = scicat_server.requests_matching("GET")
    assert get.path == "/api/v3/Proposals/DESY%2F11112222"


def proposal_warnings(caplog):
    """The warnings of the publisher that name the proposal (the fall-back is reported)."""
    return [r for r in caplog.records if r.name == "scingestor.scicat.publish"
            and r.levelno == logging.WARNING and PROPOSAL in r.getMessage()]


def test_proposal_not_found_warns(scicat_server, tmp_path, caplog):
    publisher = make_publisher(scicat_server, tmp_path)
    with caplog.at_level(logging.WARNING, logger="scingestor.scicat.publish"):
        assert publisher.fetch_proposal_groups("11112222", BT) == (None, None)
    assert [r.status for r in scicat_server.requests_matching("GET", "Proposals")] == [404]
    assert len(proposal_warnings(caplog)) == 1


def test_proposal_server_error_warns(scicat_server, tmp_path, caplog):
    scicat_server.add_proposal({"proposalId": PROPOSAL, "ownerGroup": "mygroup"})
    publisher = make_publisher(scicat_server, tmp_path)
    scicat_server.faults.fail_next(5, status=500, method="GET", path="Proposals")
    with caplog.at_level(logging.WARNING, logger="scingestor.scicat.publish"):
        assert publisher.fetch_proposal_groups("11112222", BT) == (None, None)
    # tried max_request_tries_number times, then the default groups are kept
    assert [r.status for r in scicat_server.requests_matching("GET", "Proposals")] == [500] * 3
    assert len(proposal_warnings(caplog)) == 1
