"""Tests of the SciCat-compatible development server."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
from typing import Any, Dict

import pytest
import requests

from scingestor.devserver.validation import is_iso8601

logger = logging.getLogger(__name__)

PID = "99001234/myscan_00001"
ENC = "99001234%2Fmyscan_00001"


def raw_dataset(pid: str = PID, **changes: Any) -> Dict[str, Any]:
    """A minimal valid raw dataset."""
    doc = {
        "pid": pid, "type": "raw", "ownerGroup": "99001234-dmgt", "owner": "Lead",
        "contactEmail": "pi@example.org", "sourceFolder": "/asap3/p00/raw",
        "creationTime": "2024-03-05T10:05:00+01:00",
        "principalInvestigator": "applicant@example.org",
        "creationLocation": "/DESY/PETRA III/P00", "datasetName": "myscan_00001",
        "accessGroups": ["99001234-dmgt", "p00staff"],
        "scientificMetadata": {"anything": {"goes": [1, 2]}},
    }
    doc.update(changes)
    return doc


def datablock(pid: str = PID, sizes: tuple = (10, 20)) -> Dict[str, Any]:
    """A valid OrigDatablock for ``pid``."""
    return {
        "datasetId": pid, "ownerGroup": "99001234-dmgt", "accessGroups": ["a"],
        "size": sum(sizes),
        "dataFileList": [{"path": f"f{i}.dat", "size": s,
                          "time": "2026-11-24T02:11:53.475641+0000", "uid": "root",
                          "gid": "root", "perm": "-rw-r--r--"} for i, s in enumerate(sizes)],
    }


def session(server: Any, username: str = "ingestor", password: str = "12342345"
            ) -> requests.Session:
    """A session logged in through auth/login with the Bearer header set."""
    sess = requests.Session()
    resp = sess.post(f"{server.login_url}/auth/login",
                     json={"username": username, "password": password}, timeout=10)
    assert resp.status_code == 201, resp.text
    sess.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"
    return sess


@pytest.fixture
def api(scicat_server: Any) -> requests.Session:
    """Logged-in session of the ingestor account."""
    return session(scicat_server)


# -- login and tokens ------------------------------------------------------------------


def test_auth_login_returns_token_fields(scicat_server: Any) -> None:
    resp = requests.post(f"{scicat_server.url}/auth/login",
                         json={"username": "admin", "password": "admin-pass"}, timeout=10)
    assert resp.status_code == 201
    body = resp.json()
    assert {"access_token", "id", "expires_in", "ttl", "created", "userId", "user"} <= set(body)
    assert body["id"] == body["access_token"]
    assert body["expires_in"] == 3600


def test_auth_login_rejects_bad_password(scicat_server: Any) -> None:
    resp = requests.post(f"{scicat_server.url}/auth/login",
                         json={"username": "ingestor", "password": "wrong"}, timeout=10)
    assert resp.status_code == 401
    assert resp.json() == {"statusCode": 401, "message": "Unauthorized"}


def test_auth_login_rejects_empty_username(scicat_server: Any) -> None:
    scicat_server.add_user("", "12342345")
    resp = requests.post(f"{scicat_server.url}/auth/login",
                         json={"username": "", "password": "12342345"}, timeout=10)
    assert resp.status_code == 401


@pytest.mark.devserver(users_login_mode="legacy")
def test_users_login_legacy_mode_answers_id(scicat_server: Any) -> None:
    body = '{"username": "ingestor", "password": "12342345"}'
    resp = requests.post(f"{scicat_server.url}/Users/login", data=body,
                         headers={"Content-Type": "application/json"}, timeout=10)
    assert resp.status_code == 200
    token = resp.json()["id"]
    assert requests.get(f"{scicat_server.url}/Datasets", timeout=10,
                        headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert scicat_server.requests[0].body == body


def test_users_login_answers_empty_201_by_default(scicat_server: Any) -> None:
    resp = requests.post(f"{scicat_server.url}/users/login",
                         json={"username": "ingestor", "password": "12342345"}, timeout=10)
    assert resp.status_code == 201
    assert resp.text == ""


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nonsense"},
                                     {"Authorization": "nonsense"}])
def test_missing_or_invalid_token_is_401(scicat_server: Any, headers: Dict[str, str]) -> None:
    resp = requests.get(f"{scicat_server.url}/Datasets", headers=headers, timeout=10)
    assert resp.status_code == 401
    assert resp.json() == {"statusCode": 401, "message": "Unauthorized"}


def test_query_token_ignored_by_default(scicat_server: Any) -> None:
    token = session(scicat_server).headers["Authorization"].split()[1]
    resp = requests.get(f"{scicat_server.url}/Datasets", params={"access_token": token},
                        timeout=10)
    assert resp.status_code == 401


@pytest.mark.devserver(accept_query_token=True)
def test_query_token_accepted_when_enabled(scicat_server: Any) -> None:
    token = session(scicat_server).headers["Authorization"].split()[1]
    resp = requests.get(f"{scicat_server.url}/Datasets", params={"access_token": token},
                        timeout=10)
    assert resp.status_code == 200
    assert scicat_server.requests[-1].query == {"access_token": token}
    assert scicat_server.requests[-1].path == "/api/v3/Datasets"


@pytest.mark.devserver(require_query_token=True)
def test_require_query_token_like_the_mock(scicat_server: Any, api: requests.Session) -> None:
    resp = api.get(f"{scicat_server.url}/Datasets", timeout=10)
    assert resp.status_code == 400
    assert resp.json() == {"Error": "Empty access_token"}


def test_expire_tokens(scicat_server: Any, api: requests.Session) -> None:
    assert api.get(f"{scicat_server.url}/Datasets", timeout=10).status_code == 200
    scicat_server.expire_tokens()
    assert api.get(f"{scicat_server.url}/Datasets", timeout=10).status_code == 401


@pytest.mark.devserver(token_lifetime=0)
def test_token_lifetime_zero_expires_immediately(scicat_server: Any) -> None:
    api = session(scicat_server)
    assert api.get(f"{scicat_server.url}/Datasets", timeout=10).status_code == 401


# -- datasets --------------------------------------------------------------------------


def test_post_and_get_dataset(scicat_server: Any, api: requests.Session) -> None:
    resp = api.post(f"{scicat_server.url}/Datasets", json=raw_dataset(), timeout=10)
    assert resp.status_code == 201, resp.text
    got = api.get(f"{scicat_server.url}/Datasets/{ENC}", timeout=10)
    assert got.status_code == 200
    assert got.json()["pid"] == PID
    assert got.json()["scientificMetadata"] == {"anything": {"goes": [1, 2]}}
    assert scicat_server.dataset(PID)["createdBy"] == "ingestor"
    assert [d["pid"] for d in scicat_server.datasets()] == [PID]
    assert scicat_server.requests[-1].path == f"/api/v3/Datasets/{ENC}"


def test_collection_names_case_insensitive(scicat_server: Any, api: requests.Session) -> None:
    assert api.post(f"{scicat_server.url}/datasets", json=raw_dataset(),
                    timeout=10).status_code == 201
    assert api.get(f"{scicat_server.url}/DATASETS/{ENC}", timeout=10).status_code == 200
    assert api.post(f"{scicat_server.url}/origdatablocks", json=datablock(),
                    timeout=10).status_code == 201


def test_unknown_dataset_is_404_with_real_body(scicat_server: Any,
                                               api: requests.Session) -> None:
    resp = api.get(f"{scicat_server.url}/Datasets/{ENC}", timeout=10)
    assert resp.status_code == 404
    assert resp.json() == {"message": f"dataset: {PID} not found", "error": "Not Found",
                           "statusCode": 404}


def test_unencoded_pid_slash_is_not_a_dataset_route(scicat_server: Any,
                                                   api: requests.Session) -> None:
    api.post(f"{scicat_server.url}/Datasets", json=raw_dataset(), timeout=10)
    resp = api.get(f"{scicat_server.url}/Datasets/{PID}", timeout=10)
    assert resp.status_code == 404
    assert resp.json()["message"].startswith("Cannot GET")


def test_duplicate_pid_is_409(scicat_server: Any, api: requests.Session) -> None:
    api.post(f"{scicat_server.url}/Datasets", json=raw_dataset(), timeout=10)
    resp = api.post(f"{scicat_server.url}/Datasets", json=raw_dataset(), timeout=10)
    assert resp.status_code == 409
    assert resp.json()["message"] == f"A dataset with pid {PID} already exists!"


def test_unknown_property_is_rejected(scicat_server: Any, api: requests.Session) -> None:
    resp = api.post(f"{scicat_server.url}/Datasets", json=raw_dataset(bogus=1), timeout=10)
    assert resp.status_code == 400
    assert "property bogus should not exist" in resp.json()["message"]
    assert scicat_server.datasets() == []


def test_empty_body_lists_every_missing_field(scicat_server: Any,
                                              api: requests.Session) -> None:
    resp = api.post(f"{scicat_server.url}/Datasets", json={}, timeout=10)
    assert resp.status_code == 400
    text = " ".join(resp.json()["message"])
    for field in ("type", "ownerGroup", "owner", "contactEmail", "sourceFolder",
                  "creationTime", "principalInvestigator", "creationLocation"):
        assert field in text


@pytest.mark.parametrize("change", [
    {"creationTime": "yesterday"}, {"creationTime": "2024-13-45T10:00:00"},
    {"accessGroups": "group"}, {"accessGroups": [1, 2]}, {"contactEmail": "nobody"},
    {"isPublished": "no"}, {"keywords": "scan"}, {"size": "big"}, {"type": "weird"},
    {"sourceFolder": ""},
])
def test_wrong_types_are_rejected(scicat_server: Any, api: requests.Session,
                                  change: Dict[str, Any]) -> None:
    resp = api.post(f"{scicat_server.url}/Datasets", json=raw_dataset(**change), timeout=10)
    assert resp.status_code == 400, resp.text


def test_contact_email_list_and_missing_name_derived(scicat_server: Any,
                                                     api: requests.Session) -> None:
    doc = raw_dataset(contactEmail="a@example.org;b@example.org")
    del doc["datasetName"]
    assert api.post(f"{scicat_server.url}/Datasets", json=doc, timeout=10).status_code == 201
    assert scicat_server.dataset(PID)["datasetName"] == "p00/raw"


def test_invalid_json_body_is_400(scicat_server: Any, api: requests.Session) -> None:
    resp = api.post(f"{scicat_server.url}/Datasets", data="{not json", timeout=10)
    assert resp.status_code == 400


def test_derived_dataset_requirements(scicat_server: Any, api: requests.Session) -> None:
    doc = raw_dataset("99001234/mycalib", type="derived")
    resp = api.post(f"{scicat_server.url}/Datasets", json=doc, timeout=10)
    assert resp.status_code == 400
    text = " ".join(resp.json()["message"])
    assert "investigator" in text and "inputDatasets" in text and "usedSoftware" in text
    assert "property principalInvestigator should not exist" in text
    for key in ("principalInvestigator", "creationLocation"):
        del doc[key]
    doc.update(investigator="applicant@example.org", inputDatasets=[PID],
               usedSoftware="https://github.com/nexdatas/nxstools",
               jobParameters={"command": "nxsfileinfo groupmetadata"})
    resp = api.post(f"{scicat_server.url}/Datasets", json=doc, timeout=10)
    assert resp.status_code == 201, resp.text


def test_typed_dataset_routes(scicat_server: Any, api: requests.Session) -> None:
    doc = raw_dataset()
    del doc["type"]
    assert api.post(f"{scicat_server.url}/RawDatasets", json=doc,
                    timeout=10).status_code == 201
    assert scicat_server.dataset(PID)["type"] == "raw"
    listed = api.get(f"{scicat_server.url}/DerivedDatasets", timeout=10).json()
    assert listed == []


@pytest.mark.devserver(pid_prefix="10.3204/")
def test_pid_prefix_added_on_post(scicat_server: Any, api: requests.Session) -> None:
    assert api.post(f"{scicat_server.url}/Datasets", json=raw_dataset(),
                    timeout=10).status_code == 201
    assert scicat_server.dataset("10.3204/" + PID) is not None
    assert api.get(f"{scicat_server.url}/Datasets/10.3204%2F{ENC}",
                   timeout=10).status_code == 200


def test_dataset_list_filter(scicat_server: Any, api: requests.Session) -> None:
    api.post(f"{scicat_server.url}/Datasets", json=raw_dataset(), timeout=10)
    api.post(f"{scicat_server.url}/Datasets", json=raw_dataset("99001234/other"), timeout=10)
    resp = api.get(f"{scicat_server.url}/Datasets", timeout=10,
                   params={"filter": json.dumps({"where": {"pid": "99001234/other"}})})
    assert [d["pid"] for d in resp.json()] == ["99001234/other"]


def test_patch_dataset(scicat_server: Any, api: requests.Session) -> None:
    api.post(f"{scicat_server.url}/Datasets", json=raw_dataset(), timeout=10)
    resp = api.patch(f"{scicat_server.url}/Datasets/{ENC}", timeout=10,
                     json={"owner": "Other", "scientificMetadata": {"energy": 1}})
    assert resp.status_code == 200, resp.text
    stored = scicat_server.dataset(PID)
    assert stored["owner"] == "Other"
    assert stored["scientificMetadata"] == {"energy": 1}
    assert stored["contactEmail"] == "pi@example.org"


@pytest.mark.parametrize("key", ["pid", "type"])
def test_patch_with_pid_or_type_is_400(scicat_server: Any, api: requests.Session,
                                       key: str) -> None:
    api.post(f"{scicat_server.url}/Datasets", json=raw_dataset(), timeout=10)
    resp = api.patch(f"{scicat_server.url}/Datasets/{ENC}", timeout=10,
                     json={key: raw_dataset()[key], "owner": "Other"})
    assert resp.status_code == 400
    assert scicat_server.dataset(PID)["owner"] == "Lead"


def test_patch_unknown_dataset_is_404(scicat_server: Any, api: requests.Session) -> None:
    resp = api.patch(f"{scicat_server.url}/Datasets/{ENC}", json={"owner": "x"}, timeout=10)
    assert resp.status_code == 404


def test_delete_dataset_v3_keeps_its_datablocks(scicat_server: Any,
                                                api: requests.Session) -> None:
    api.post(f"{scicat_server.url}/Datasets", json=raw_dataset(), timeout=10)
    api.post(f"{scicat_server.url}/OrigDatablocks", json=datablock(), timeout=10)
    assert api.delete(f"{scicat_server.url}/Datasets/{ENC}", timeout=10).status_code == 200
    assert scicat_server.datasets() == [] and len(scicat_server.datablocks()) == 1
    again = api.delete(f"{scicat_server.url}/Datasets/{ENC}", timeout=10)
    assert again.status_code == 404
    assert again.json() == {"message": "Not Found", "statusCode": 404}


@pytest.mark.devserver(restrict_ingestor=True)
def test_restricted_ingestor_gets_403_for_foreign_groups(scicat_server: Any,
                                                         api: requests.Session) -> None:
    assert api.post(f"{scicat_server.url}/Datasets", json=raw_dataset(),
                    timeout=10).status_code == 201
    assert api.get(f"{scicat_server.url}/Datasets/{ENC}", timeout=10).status_code == 403
    assert api.get(f"{scicat_server.url}/Datasets", timeout=10).json() == []
    admin = session(scicat_server, "admin", "admin-pass")
    assert admin.get(f"{scicat_server.url}/Datasets/{ENC}", timeout=10).status_code == 200


def test_group_member_can_read(scicat_server: Any) -> None:
    scicat_server.add_user("member", "pw", groups=["p00staff"], admin=False)
    scicat_server.add_user("stranger", "pw", groups=["other"], admin=False)
    session(scicat_server).post(f"{scicat_server.url}/Datasets", json=raw_dataset(),
                                timeout=10)
    member, stranger = session(scicat_server, "member", "pw"), session(scicat_server,
                                                                       "stranger", "pw")
    assert member.get(f"{scicat_server.url}/Datasets/{ENC}", timeout=10).status_code == 200
    assert stranger.get(f"{scicat_server.url}/Datasets/{ENC}", timeout=10).status_code == 403


# -- datablocks ------------------------------------------------------------------------


def test_datablocks_update_size_and_duplicate(scicat_server: Any,
                                              api: requests.Session) -> None:
    api.post(f"{scicat_server.url}/Datasets", json=raw_dataset(), timeout=10)
    for _ in range(2):
        resp = api.post(f"{scicat_server.url}/OrigDatablocks", json=datablock(), timeout=10)
        assert resp.status_code == 201, resp.text
    listed = api.get(f"{scicat_server.url}/Datasets/{ENC}/OrigDatablocks", timeout=10).json()
    assert len(listed) == 2 and len({b["id"] for b in listed}) == 2
    stored = scicat_server.dataset(PID)
    assert stored["size"] == 60 and stored["numberOfFiles"] == 4
    resp = api.delete(f"{scicat_server.url}/OrigDatablocks/{listed[0]['id']}", timeout=10)
    assert resp.status_code == 200
    assert len(scicat_server.datablocks(PID)) == 1
    assert scicat_server.dataset(PID)["size"] == 30
    again = api.delete(f"{scicat_server.url}/OrigDatablocks/{listed[0]['id']}", timeout=10)
    assert again.status_code == 404


def test_datablock_for_unknown_dataset_is_404(scicat_server: Any,
                                              api: requests.Session) -> None:
    resp = api.post(f"{scicat_server.url}/OrigDatablocks", json=datablock(), timeout=10)
    assert resp.status_code == 404
    assert resp.json()["message"] == f"Dataset: {PID} not found for attaching an origdatablock"


@pytest.mark.parametrize("mutate", [
    lambda b: b.pop("datasetId"), lambda b: b.update(size=1.5), lambda b: b.pop("size"),
    lambda b: b.update(dataFileList=[]), lambda b: b["dataFileList"][0].pop("path"),
    lambda b: b["dataFileList"][0].update(size="x"),
    lambda b: b["dataFileList"][0].update(time="never"),
    lambda b: b["dataFileList"][0].update(bogus=1), lambda b: b.update(bogus=1),
])
def test_invalid_datablocks_are_400(scicat_server: Any, api: requests.Session,
                                    mutate: Any) -> None:
    api.post(f"{scicat_server.url}/Datasets", json=raw_dataset(), timeout=10)
    body = datablock()
    mutate(body)
    resp = api.post(f"{scicat_server.url}/OrigDatablocks", json=body, timeout=10)
    assert resp.status_code == 400, resp.text
    assert scicat_server.datablocks() == []


# -- attachments -----------------------------------------------------------------------


def test_attachments(scicat_server: Any, api: requests.Session) -> None:
    api.post(f"{scicat_server.url}/Datasets", json=raw_dataset(), timeout=10)
    body = {"id": "mine", "caption": "", "ownerGroup": "99001234-dmgt",
            "thumbnail": "data:image/png;base64,AAAA", "datasetId": PID}
    url = f"{scicat_server.url}/Datasets/{ENC}/Attachments"
    first = api.post(url, json=body, timeout=10)
    second = api.post(url, json=body, timeout=10)
    assert first.status_code == 201 and second.status_code == 201
    ids = [a["id"] for a in api.get(url, timeout=10).json()]
    assert len(ids) == 2 and "mine" not in ids
    assert api.delete(f"{url}/{ids[0]}", timeout=10).status_code == 200
    assert [a["id"] for a in scicat_server.attachments(PID)] == ids[1:]
    assert api.delete(f"{url}/{ids[0]}", timeout=10).status_code == 404


@pytest.mark.parametrize("body", [{"caption": "x"}, {"ownerGroup": "g"},
                                  {"ownerGroup": "g", "caption": "", "bogus": 1}])
def test_invalid_attachments_are_400(scicat_server: Any, api: requests.Session,
                                     body: Dict[str, Any]) -> None:
    api.post(f"{scicat_server.url}/Datasets", json=raw_dataset(), timeout=10)
    resp = api.post(f"{scicat_server.url}/Datasets/{ENC}/Attachments", json=body, timeout=10)
    assert resp.status_code == 400
    assert scicat_server.attachments() == []


def test_attachment_for_unknown_dataset_is_404(scicat_server: Any,
                                               api: requests.Session) -> None:
    resp = api.post(f"{scicat_server.url}/Datasets/{ENC}/Attachments", timeout=10,
                    json={"caption": "", "ownerGroup": "g"})
    assert resp.status_code == 404


# -- proposals, samples, instruments ---------------------------------------------------


def test_proposals(scicat_server: Any, api: requests.Session) -> None:
    missing = api.get(f"{scicat_server.url}/Proposals/11112222.99001234", timeout=10)
    assert missing.status_code == 404
    assert missing.json() == {"message": "proposal: 11112222.99001234 not found",
                              "error": "Not Found", "statusCode": 404}
    scicat_server.add_proposal({"proposalId": "99001236", "ownerGroup": "mygroup",
                                "accessGroups": ["group1", "group2"]})
    got = api.get(f"{scicat_server.url}/Proposals/99001236", timeout=10).json()
    assert got["accessGroups"] == ["group1", "group2"]
    resp = api.post(f"{scicat_server.url}/Proposals", json={"proposalId": "p2"}, timeout=10)
    assert resp.status_code == 201
    assert {p["proposalId"] for p in scicat_server.proposals()} == {"99001236", "p2"}
    assert api.post(f"{scicat_server.url}/Proposals", json={"title": "x"},
                    timeout=10).status_code == 400


def test_samples_and_instruments(scicat_server: Any, api: requests.Session) -> None:
    resp = api.post(f"{scicat_server.url}/Samples", json={"sampleId": "H2O/42"}, timeout=10)
    assert resp.status_code == 201
    assert api.get(f"{scicat_server.url}/Samples/H2O%2F42", timeout=10).status_code == 200
    assert api.post(f"{scicat_server.url}/Samples", json={"sampleId": "H2O/42"},
                    timeout=10).status_code == 409
    resp = api.post(f"{scicat_server.url}/Instruments", json={"name": "P00"}, timeout=10)
    assert resp.status_code == 201
    pid = resp.json()["pid"]
    assert [i["pid"] for i in api.get(f"{scicat_server.url}/Instruments",
                                      timeout=10).json()] == [pid]
    assert len(scicat_server.samples()) == 1 and len(scicat_server.instruments()) == 1


def test_unknown_route_is_404(scicat_server: Any, api: requests.Session) -> None:
    assert api.get(f"{scicat_server.url}/Nothing", timeout=10).status_code == 404
    assert requests.get(f"{scicat_server.url[:-7]}/other", timeout=10).status_code == 404


# -- fault injection -------------------------------------------------------------------


def test_fail_next_matching(scicat_server: Any, api: requests.Session) -> None:
    scicat_server.faults.fail_next(1, status=503, method="POST", path="Datasets$")
    assert api.get(f"{scicat_server.url}/Datasets", timeout=10).status_code == 200
    first = api.post(f"{scicat_server.url}/Datasets", json=raw_dataset(), timeout=10)
    assert first.status_code == 503
    assert scicat_server.datasets() == []
    assert api.post(f"{scicat_server.url}/Datasets", json=raw_dataset(),
                    timeout=10).status_code == 201
    assert [r.status for r in scicat_server.requests] == [201, 200, 503, 201]


def test_fail_requests_by_number(scicat_server: Any) -> None:
    scicat_server.faults.fail_requests(2, status=500, body={"message": "boom"})
    api = session(scicat_server)
    resp = api.get(f"{scicat_server.url}/Datasets", timeout=10)
    assert resp.status_code == 500 and resp.json() == {"message": "boom"}
    assert api.get(f"{scicat_server.url}/Datasets", timeout=10).status_code == 200


def test_drop_response_processes_request(scicat_server: Any, api: requests.Session) -> None:
    scicat_server.faults.drop_next(1, method="POST")
    with pytest.raises(requests.ConnectionError):
        api.post(f"{scicat_server.url}/Datasets", json=raw_dataset(), timeout=10)
    assert scicat_server.dataset(PID) is not None
    assert scicat_server.requests[-1].dropped
    retry = requests.post(f"{scicat_server.url}/Datasets", json=raw_dataset(), timeout=10,
                          headers={"Authorization": api.headers["Authorization"]})
    assert retry.status_code == 409


def test_refuse_connections_until_clear(scicat_server: Any, api: requests.Session) -> None:
    port = scicat_server.port
    scicat_server.faults.refuse_connections()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{scicat_server.url}/Datasets", timeout=10)
    with pytest.raises(requests.ConnectionError):
        api.get(f"{scicat_server.url}/Datasets", timeout=10)
    scicat_server.faults.clear()
    assert scicat_server.port == port
    assert api.get(f"{scicat_server.url}/Datasets", timeout=10).status_code == 200


def test_latency_setting_is_reported(scicat_server: Any, api: requests.Session) -> None:
    scicat_server.faults.set_latency(0.01)
    assert scicat_server.faults.describe()["latency"] == 0.01
    assert api.get(f"{scicat_server.url}/Datasets", timeout=10).status_code == 200
    scicat_server.faults.clear()
    assert scicat_server.faults.describe()["latency"] == 0.0


def test_admin_api(scicat_server: Any, api: requests.Session) -> None:
    admin = scicat_server.url.replace("/api/v3", "/__devserver__")
    api.post(f"{scicat_server.url}/Datasets", json=raw_dataset(), timeout=10)
    logged = requests.get(f"{admin}/requests", timeout=10).json()
    assert [r["method"] for r in logged] == ["POST", "POST"]
    docs = requests.get(f"{admin}/documents", timeout=10).json()
    assert [d["pid"] for d in docs["datasets"]] == [PID]
    assert requests.post(f"{admin}/faults/fail", json={"count": 1, "status": 500,
                                                       "path": "Datasets"},
                         timeout=10).status_code == 200
    assert api.get(f"{scicat_server.url}/Datasets", timeout=10).status_code == 500
    requests.post(f"{admin}/faults/drop", json={"count": 1}, timeout=10)
    with pytest.raises(requests.ConnectionError):
        api.get(f"{scicat_server.url}/Datasets", timeout=10)
    requests.post(f"{admin}/proposals", json={"proposalId": "x1", "ownerGroup": "g"},
                  timeout=10)
    assert [p["proposalId"] for p in scicat_server.proposals()] == ["x1"]
    requests.post(f"{admin}/users", json={"username": "u", "password": "p"}, timeout=10)
    session(scicat_server, "u", "p")
    requests.post(f"{admin}/tokens/expire", timeout=10)
    assert api.get(f"{scicat_server.url}/Datasets", timeout=10).status_code == 401
    assert requests.post(f"{admin}/reset", timeout=10).status_code == 200
    assert scicat_server.datasets() == [] and scicat_server.requests == []


def test_admin_refuse_over_http(scicat_server: Any) -> None:
    admin = scicat_server.url.replace("/api/v3", "/__devserver__")
    resp = requests.post(f"{admin}/faults/refuse", json={"seconds": 30}, timeout=10)
    assert resp.status_code == 200
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{admin}/faults", timeout=10)
    scicat_server.faults.clear()
    assert requests.get(f"{admin}/faults", timeout=10).json()["refusing"] is False


def test_sqlite_file_persists(tmp_path: Any, dev_server_factory: Any) -> None:
    db = str(tmp_path / "x.sqlite")
    first = dev_server_factory(db=db)
    session(first).post(f"{first.url}/Datasets", json=raw_dataset(), timeout=10)
    first.close()
    second = dev_server_factory(db=db)
    assert second.dataset(PID)["owner"] == "Lead"


def test_server_down_at_first_then_started(dev_server_factory: Any) -> None:
    handle = dev_server_factory(started=False)
    with pytest.raises(requests.ConnectionError):
        requests.post(f"{handle.url}/auth/login", timeout=10, json={})
    handle.start()
    api = session(handle)
    api.post(f"{handle.url}/Datasets", json=raw_dataset(), timeout=10)
    handle.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{handle.url}/Datasets", timeout=10)
    handle.start()
    assert api.get(f"{handle.url}/Datasets/{ENC}", timeout=10).status_code == 200


def test_iso8601_checker() -> None:
    assert is_iso8601("2024-03-08T09:00:00.000000+0000")
    assert is_iso8601("2024-03-05T10:05:00+01:00")
    assert is_iso8601("2024-03-05T10:05:00Z")
    assert not is_iso8601("2024-02-30T10:05:00Z")
    assert not is_iso8601("Tue Mar  5 10:10:05 2024")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_console_script_prints_url_and_stops_on_sigterm(tmp_path: Any) -> None:
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(__file__)))
    proc = subprocess.Popen(
        [sys.executable, "-m", "scingestor.devserver", "--port", str(port), "--db",
         str(tmp_path / "db.sqlite"), "--users-login-mode", "modern"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = proc.stdout.readline().strip()
        assert url == f"http://127.0.0.1:{port}/api/v3"
        resp = requests.post(f"{url}/Users/login", timeout=10,
                             json={"username": "ingestor", "password": "12342345"})
        assert resp.status_code == 201 and resp.text == ""
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


# -- API v4 and server-managed fields ----------------------------------------------------

V4_REJECTED = ("proposalId", "instrumentId", "principalInvestigator", "sampleId",
               "investigator")
FORBIDDEN = {"message": "Forbidden resource", "error": "Forbidden", "statusCode": 403}


def v4_dataset(pid: str = PID, **changes: Any) -> Dict[str, Any]:
    """A minimal valid v4 dataset (the v3 raw one with the v4 array names)."""
    doc = raw_dataset(pid)
    del doc["principalInvestigator"]
    doc.update(principalInvestigators=["applicant@example.org"], proposalIds=["99001234"])
    doc.update(changes)
    return doc


def blocks_where(api: requests.Session, url: str, pid: str = PID) -> list:
    """OrigDatablocks of ``pid`` through the v4 filter query."""
    resp = api.get(f"{url}/origdatablocks", timeout=10,
                   params={"filter": json.dumps({"where": {"datasetId": pid}})})
    assert resp.status_code == 200, resp.text
    return resp.json()


def attachments_where(api: requests.Session, url: str, pid: str = PID) -> list:
    """Attachments linked to ``pid`` through the v4 relationships query."""
    resp = api.get(f"{url}/attachments", timeout=10,
                   params={"filter": json.dumps({"where": {"relationships.targetId": pid}})})
    assert resp.status_code == 200, resp.text
    return resp.json()


@pytest.fixture
def v4(scicat_server: Any) -> str:
    """The v4 API root of the test's server."""
    return scicat_server.url_for("v4")


def test_handle_urls_and_api_version_option(dev_server_factory: Any) -> None:
    handle = dev_server_factory(api_version="v4")
    assert handle.url.endswith("/api/v4") and handle.url == handle.server.url_v4
    assert handle.login_url == handle.server.url and handle.login_url.endswith("/api/v3")
    assert handle.url_for("v3") == handle.login_url
    with pytest.raises(ValueError):
        dev_server_factory(api_version="v5")


def test_api_version_fixture_points_url_at_that_version(scicat_server: Any,
                                                        api_version: str) -> None:
    assert scicat_server.url.endswith(f"/api/{api_version}")
    api = session(scicat_server)
    assert api.post(f"{scicat_server.url}/datasets",
                    json=raw_dataset() if api_version == "v3" else v4_dataset(),
                    timeout=10).status_code == 201
    got = api.get(f"{scicat_server.url}/datasets/{ENC}", timeout=10)
    assert got.status_code == 200 and got.json()["pid"] == PID


def test_v4_has_no_login_and_no_v3_only_collections(scicat_server: Any, api: requests.Session,
                                                    v4: str) -> None:
    resp = requests.post(f"{v4}/auth/login", timeout=10,
                         json={"username": "ingestor", "password": "12342345"})
    assert resp.status_code == 404
    assert resp.json() == {"message": "Cannot POST /api/v4/auth/login", "error": "Not Found",
                           "statusCode": 404}
    api.post(f"{v4}/datasets", json=v4_dataset(), timeout=10)
    for path in (f"datasets/{ENC}/origdatablocks", f"datasets/{ENC}/attachments", "proposals",
                 "Samples", "instruments", "users"):
        resp = api.get(f"{v4}/{path}", timeout=10)
        assert resp.status_code == 404
        assert resp.json()["message"] == f"Cannot GET /api/v4/{path}"


def test_v4_without_token_is_403(v4: str) -> None:
    for method in ("GET", "POST"):
        resp = requests.request(method, f"{v4}/datasets", json={}, timeout=10)
        assert resp.status_code == 403 and resp.json() == FORBIDDEN


def test_v4_dataset_create_get_list(scicat_server: Any, api: requests.Session,
                                    v4: str) -> None:
    resp = api.post(f"{v4}/datasets", json=v4_dataset(sampleIds=["s1", "s2"]), timeout=10)
    assert resp.status_code == 201, resp.text
    assert resp.json()["id"] == PID and resp.json()["version"] == "4"
    api.post(f"{v4}/datasets", json=v4_dataset("99001234/other", proposalIds=["p2"]),
             timeout=10)
    got = api.get(f"{v4}/datasets/{ENC}", timeout=10).json()
    assert got["sampleIds"] == ["s1", "s2"] and got["instrumentIds"] == []
    assert not {"id", "history", "sampleId", "proposalId", "principalInvestigator"} & set(got)
    listed = api.get(f"{v4}/datasets", timeout=10,
                     params={"filter": json.dumps({"where": {"proposalIds": "p2"}})}).json()
    assert [d["pid"] for d in listed] == ["99001234/other"]
    v3 = api.get(f"{scicat_server.url}/Datasets/{ENC}", timeout=10).json()
    assert (v3["sampleId"], v3["proposalId"]) == ("s1", "99001234")
    assert "instrumentId" not in v3
    bad = api.get(f"{v4}/datasets", params={"filter": "{bad"}, timeout=10)
    assert bad.status_code == 400


@pytest.mark.parametrize("key", V4_REJECTED)
def test_v4_rejects_v3_field_names(scicat_server: Any, api: requests.Session, v4: str,
                                   key: str) -> None:
    resp = api.post(f"{v4}/datasets", json=v4_dataset(**{key: "x"}), timeout=10)
    assert resp.status_code == 400
    assert resp.json() == {"statusCode": 400, "message": [f"property {key} should not exist"],
                           "error": "Bad Request"}
    api.post(f"{v4}/datasets", json=v4_dataset(), timeout=10)
    patched = api.patch(f"{v4}/datasets/{ENC}", json={key: "x"}, timeout=10)
    assert patched.status_code == 400
    assert patched.json()["message"] == [f"property {key} should not exist"]


def test_v4_required_fields_and_missing_owner(scicat_server: Any, api: requests.Session,
                                              v4: str) -> None:
    resp = api.post(f"{v4}/datasets", json={}, timeout=10)
    assert resp.status_code == 400
    assert resp.json()["message"] == [
        "type must be a string", "ownerGroup must be a string",
        "Expected an email or a list of semicolon separated emails, got undefined",
        "sourceFolder should not be empty", "sourceFolder must be a string",
        "creationTime must be a valid ISO 8601 date string", "datasetName must be a string"]
    body = v4_dataset()
    del body["owner"]
    resp = api.post(f"{v4}/datasets", json=body, timeout=10)
    assert resp.status_code == 500
    assert resp.json() == {"message": "Something went wrong. Please try again later.",
                           "statusCode": 500}
    assert scicat_server.datasets() == []


def test_v4_duplicate_and_unknown_dataset(scicat_server: Any, api: requests.Session,
                                          v4: str) -> None:
    missing = api.get(f"{v4}/datasets/{ENC}", timeout=10)
    assert missing.status_code == 404
    assert missing.json() == {"message": "dataset: null not found", "error": "Not Found",
                              "statusCode": 404}
    api.post(f"{v4}/datasets", json=v4_dataset(), timeout=10)
    again = api.post(f"{v4}/datasets", json=v4_dataset(), timeout=10)
    assert again.status_code == 409
    assert again.json()["message"] == f"A dataset with pid {PID} already exists!"
    assert api.patch(f"{v4}/datasets/99001234%2Fnone", json={},
                     timeout=10).json()["message"] == "Dataset not found"


@pytest.mark.parametrize("content_type", ["application/json", "application/merge-patch+json"])
def test_v4_patch_without_size_resets_it(scicat_server: Any, api: requests.Session, v4: str,
                                         content_type: str) -> None:
    api.post(f"{scicat_server.url}/Datasets", json=raw_dataset(packedSize=5), timeout=10)
    api.post(f"{v4}/origdatablocks", json=datablock(), timeout=10)
    assert (scicat_server.dataset(PID)["size"], scicat_server.dataset(PID)["numberOfFiles"]) \
        == (30, 2)
    headers = {"Content-Type": content_type}
    resp = api.patch(f"{v4}/datasets/{ENC}", data=json.dumps({"keywords": ["a"]}),
                     headers=headers, timeout=10)
    assert resp.status_code == 200, resp.text
    stored = scicat_server.dataset(PID)
    assert (stored["size"], stored["numberOfFiles"], stored["packedSize"]) == (0, 0, 0)
    assert stored["keywords"] == ["a"]
    api.patch(f"{v4}/datasets/{ENC}", data=json.dumps({"size": 30, "numberOfFiles": 2}),
              headers=headers, timeout=10)
    assert (scicat_server.dataset(PID)["size"], scicat_server.dataset(PID)["numberOfFiles"]) \
        == (30, 2)


def test_v3_patch_keeps_size(scicat_server: Any, api: requests.Session) -> None:
    api.post(f"{scicat_server.url}/Datasets", json=raw_dataset(), timeout=10)
    api.post(f"{scicat_server.url}/OrigDatablocks", json=datablock(), timeout=10)
    api.patch(f"{scicat_server.url}/Datasets/{ENC}", json={"keywords": ["a"]}, timeout=10)
    assert scicat_server.dataset(PID)["size"] == 30


def test_v4_merge_patch_merges_and_json_patch_replaces(scicat_server: Any,
                                                       api: requests.Session, v4: str) -> None:
    metadata = {"temp": {"value": 300, "unit": "K"}, "name": "a"}
    api.post(f"{v4}/datasets", json=v4_dataset(scientificMetadata=metadata), timeout=10)
    merge = {"Content-Type": "application/merge-patch+json"}
    resp = api.patch(f"{v4}/datasets/{ENC}", headers=merge, timeout=10,
                     data=json.dumps({"scientificMetadata": {"name": None, "x": 1}}))
    assert resp.status_code == 200
    assert set(scicat_server.dataset(PID)["scientificMetadata"]) == {"temp", "x"}
    api.patch(f"{v4}/datasets/{ENC}", json={"scientificMetadata": {"y": 2}}, timeout=10)
    assert scicat_server.dataset(PID)["scientificMetadata"] == {"y": 2}


def test_v4_patch_must_keep_value_and_unit_together(scicat_server: Any,
                                                    api: requests.Session, v4: str) -> None:
    api.post(f"{v4}/datasets", timeout=10,
             json=v4_dataset(scientificMetadata={"temp": {"value": 300, "unit": "K"}}))
    resp = api.patch(f"{v4}/datasets/{ENC}", timeout=10,
                     json={"scientificMetadata": {"temp": {"value": 301}}})
    assert resp.status_code == 400
    assert resp.json()["message"] == (
        f"Original dataset {PID} contains both value and unit in scientificMetadata.temp. "
        "Please provide both when updating.")
    v3 = api.patch(f"{scicat_server.url}/Datasets/{ENC}", timeout=10,
                   json={"scientificMetadata": {"temp": {"value": 301}}})
    assert v3.status_code == 200


@pytest.mark.parametrize("key", ["pid", "type"])
def test_v4_patch_with_pid_or_type_is_400(scicat_server: Any, api: requests.Session, v4: str,
                                          key: str) -> None:
    api.post(f"{v4}/datasets", json=v4_dataset(), timeout=10)
    resp = api.patch(f"{v4}/datasets/{ENC}", json={key: v4_dataset()[key]}, timeout=10)
    assert resp.status_code == 400
    assert resp.json()["message"] == [f"property {key} should not exist"]


def test_server_managed_dataset_fields(scicat_server: Any, api: requests.Session,
                                       api_version: str) -> None:
    metadata = {"temp": {"value": 300, "unit": "K"}, "len": {"value": 5, "unit": "mm"},
                "energy": {"value": 10, "unit": "keV"}, "odd": {"value": 3, "unit": "furlong"},
                "plain": {"value": 1}, "deep": {"x": {"value": [1, 2], "unit": "mm"}}}
    body = raw_dataset(scientificMetadata=metadata)
    del body["datasetName"]
    api.post(f"{scicat_server.login_url}/Datasets", json=body, timeout=10)
    got = api.get(f"{scicat_server.url}/datasets/{ENC}", timeout=10).json()
    expected = {
        "_id": PID, "__v": 0, "createdBy": "ingestor", "updatedBy": "ingestor",
        "inputDatasets": [], "usedSoftware": [], "relationships": [], "packedSize": 0,
        "numberOfFilesArchived": 0, "version": "3", "techniques": [], "sharedWith": [],
        "isPublished": False, "classification": "IN=medium,AV=low,CO=low",
        "principalInvestigators": ["applicant@example.org"], "proposalIds": [None],
        "sampleIds": [None], "instrumentIds": [None], "datasetName": "p00/raw",
        "creationTime": "2024-03-05T09:05:00.000Z",
    }
    assert {key: got.get(key) for key in expected} == expected
    assert is_iso8601(got["createdAt"]) and got["createdAt"].endswith("Z")
    assert got["datasetlifecycle"]["archiveStatusMessage"] == "datasetCreated"
    singular = {"principalInvestigator": "applicant@example.org", "proposalId": None,
                "sampleId": None, "instrumentId": None, "history": []}
    if api_version == "v3":
        assert {key: got.get(key, "absent") for key in singular} == singular
    else:
        assert not set(singular) & set(got)
    meta = got["scientificMetadata"]
    assert (meta["temp"]["valueSI"], meta["temp"]["unitSI"]) == (300, "K")
    assert (meta["len"]["valueSI"], meta["len"]["unitSI"]) == (0.005, "m")
    assert meta["energy"]["unitSI"] == "(kg m^2) / s^2"
    assert meta["energy"]["valueSI"] == pytest.approx(1.602176565e-15)
    assert (meta["odd"]["valueSI"], meta["odd"]["unitSI"]) == (3, "furlong")
    assert meta["plain"] == {"value": 1}
    assert meta["deep"]["x"]["valueSI"] == [0.001, 0.002]


def test_v3_derived_dataset_fields(scicat_server: Any, api: requests.Session) -> None:
    doc = raw_dataset("99001234/calib", type="derived", investigator="inv@example.org",
                      inputDatasets=[PID], usedSoftware=["nxstools"])
    for key in ("principalInvestigator", "creationLocation"):
        del doc[key]
    assert api.post(f"{scicat_server.url}/Datasets", json=doc, timeout=10).status_code == 201
    got = api.get(f"{scicat_server.url}/Datasets/99001234%2Fcalib", timeout=10).json()
    assert got["principalInvestigator"] == "inv@example.org" and "investigator" not in got
    assert (got["principalInvestigators"], got["proposalIds"]) == (["inv@example.org"], [None])
    assert (got["sampleIds"], got["instrumentIds"]) == ([], [])
    assert "sampleId" not in got and got["proposalId"] is None


def test_v4_origdatablocks(scicat_server: Any, api: requests.Session, v4: str) -> None:
    api.post(f"{v4}/datasets", json=v4_dataset(), timeout=10)
    body = dict(datablock(), ownerGroup="someone-else", accessGroups=["x"])
    resp = api.post(f"{v4}/origdatablocks", json=body, timeout=10)
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert created["id"] == created["_id"]
    assert (created["ownerGroup"], created["accessGroups"]) == \
        ("99001234-dmgt", ["99001234-dmgt", "p00staff"])
    assert created["dataFileList"][0]["time"] == "2026-11-24T02:11:53.475Z"
    listed = blocks_where(api, v4)
    assert [b["_id"] for b in listed] == [created["_id"]] and "id" not in listed[0]
    one = api.get(f"{v4}/origdatablocks/{created['_id']}", timeout=10)
    assert one.status_code == 200 and one.json()["size"] == 30
    missing = api.get(f"{v4}/origdatablocks/nothing", timeout=10)
    assert missing.status_code == 404
    assert missing.json()["message"] == "OrigDatablock: nothing not found"
    unknown = api.post(f"{v4}/origdatablocks", json=datablock("99001234/none"), timeout=10)
    assert unknown.json()["message"] == \
        "Dataset: 99001234/none not found for attaching an origdatablock"
    assert api.delete(f"{v4}/origdatablocks/{created['_id']}", timeout=10).status_code == 200
    assert blocks_where(api, v4) == [] and scicat_server.dataset(PID)["size"] == 0


@pytest.mark.parametrize("route", ["v4", "v3", "v3-nested"])
def test_patch_datablock_replaces_files_in_place(scicat_server: Any, api: requests.Session,
                                                 route: str) -> None:
    v3 = scicat_server.url
    api.post(f"{v3}/Datasets", json=raw_dataset(), timeout=10)
    block_id = api.post(f"{v3}/OrigDatablocks", json=datablock(), timeout=10).json()["id"]
    api.post(f"{v3}/OrigDatablocks", json=datablock(sizes=(1,)), timeout=10)
    url = {"v4": f"{scicat_server.url_for('v4')}/origdatablocks/{block_id}",
           "v3": f"{v3}/OrigDatablocks/{block_id}",
           "v3-nested": f"{v3}/Datasets/{ENC}/OrigDatablocks/{block_id}"}[route]
    new = datablock(sizes=(5, 6, 7))
    resp = api.patch(url, json={"dataFileList": new["dataFileList"], "size": 18}, timeout=10)
    assert resp.status_code == 200, resp.text
    assert [f["path"] for f in resp.json()["dataFileList"]] == ["f0.dat", "f1.dat", "f2.dat"]
    assert len(scicat_server.datablocks(PID)) == 2
    stored = scicat_server.dataset(PID)
    assert (stored["size"], stored["numberOfFiles"]) == (19, 4)
    rejected = api.patch(url, json={"datasetId": PID, "size": 1,
                                    "dataFileList": new["dataFileList"]}, timeout=10)
    assert rejected.status_code == 400
    assert rejected.json()["message"] == ["property datasetId should not exist"]
    size_only = api.patch(url, json={"size": 18}, timeout=10)
    assert size_only.status_code == (400 if route == "v3-nested" else 200)


def test_v4_dataset_include_children(scicat_server: Any, api: requests.Session,
                                     v4: str) -> None:
    api.post(f"{v4}/datasets", json=v4_dataset(), timeout=10)
    api.post(f"{v4}/origdatablocks", json=datablock(), timeout=10)
    api.post(f"{scicat_server.url}/Datasets/{ENC}/Attachments", timeout=10,
             json={"caption": "c", "ownerGroup": "g"})
    got = api.get(f"{v4}/datasets/{ENC}?include=origdatablocks&include=attachments",
                  timeout=10).json()
    assert len(got["origdatablocks"]) == 1 and got["origdatablocks"][0]["size"] == 30
    assert [a["caption"] for a in got["attachments"]] == ["c"]
    only = api.get(f"{v4}/datasets/{ENC}", params={"include": "origdatablocks"},
                   timeout=10).json()
    assert "origdatablocks" in only and "attachments" not in only
    bad = api.get(f"{v4}/datasets/{ENC}", params={"include": "bogus"}, timeout=10)
    assert bad.status_code == 400
    assert bad.json()["message"] == \
        'Provided include field "bogus" is not part of the dataset relations'


def test_v4_attachments(scicat_server: Any, api: requests.Session, v4: str) -> None:
    api.post(f"{v4}/datasets", json=v4_dataset(), timeout=10)
    body = {"caption": "c", "ownerGroup": "99001234-dmgt", "isPublished": False,
            "thumbnail": "data:image/png;base64,AAAA",
            "relationships": [{"targetId": PID, "targetType": "dataset"}]}
    first = api.post(f"{v4}/attachments", json=body, timeout=10)
    assert first.status_code == 201, first.text
    aid = first.json()["aid"]
    assert first.json()["relationships"] == [
        {"relationType": "is attached to", "targetId": PID, "targetType": "dataset"}]
    chosen = api.post(f"{v4}/attachments", json=dict(body, aid="mine"), timeout=10)
    assert chosen.json()["aid"] == "mine"
    taken = api.post(f"{v4}/attachments", json=dict(body, aid="mine"), timeout=10)
    assert taken.status_code == 500
    loose = dict(body)
    del loose["relationships"]
    unlinked = api.post(f"{v4}/attachments", json=loose, timeout=10)
    assert unlinked.status_code == 201 and unlinked.json()["relationships"] == []
    assert sorted(a["aid"] for a in attachments_where(api, v4)) == sorted([aid, "mine"])
    v3_list = api.get(f"{scicat_server.url}/Datasets/{ENC}/Attachments", timeout=10).json()
    assert sorted(a["id"] for a in v3_list) == sorted([aid, "mine"])
    assert {a["datasetId"] for a in v3_list} == {PID}
    one = api.get(f"{v4}/attachments/{aid}", timeout=10)
    assert one.status_code == 200 and one.json()["caption"] == "c"
    patched = api.patch(f"{v4}/attachments/{aid}", json={"caption": "new"}, timeout=10)
    assert patched.status_code == 200 and patched.json()["caption"] == "new"
    assert api.patch(f"{v4}/attachments/{aid}", json={"aid": "x"},
                     timeout=10).status_code == 400
    assert api.delete(f"{v4}/attachments/{aid}", timeout=10).status_code == 200
    again = api.delete(f"{v4}/attachments/{aid}", timeout=10)
    assert again.status_code == 404
    assert again.json()["message"] == f"Attachment: {aid} not found"


@pytest.mark.parametrize("change,message", [
    ({"datasetId": PID}, "property datasetId should not exist"),
    ({"caption": None}, "caption must be a string"),
    ({"isPublished": None}, "isPublished must be a boolean value"),
    ({"relationships": [{"targetId": PID}]},
     "relationships.0.targetType must be one of the following values: dataset, proposal, "
     "sample, published_data"),
])
def test_v4_attachment_validation(scicat_server: Any, api: requests.Session, v4: str,
                                  change: Dict[str, Any], message: str) -> None:
    body = {"caption": "c", "ownerGroup": "g", "isPublished": False,
            "relationships": [{"targetId": PID, "targetType": "dataset"}]}
    body.update(change)
    body = {key: value for key, value in body.items() if value is not None}
    resp = api.post(f"{v4}/attachments", json=body, timeout=10)
    assert resp.status_code == 400
    assert resp.json()["message"] == [message]


def test_v3_attachment_is_found_by_v4_relationship_query(scicat_server: Any,
                                                         api: requests.Session,
                                                         v4: str) -> None:
    api.post(f"{scicat_server.url}/Datasets", json=raw_dataset(), timeout=10)
    resp = api.post(f"{scicat_server.url}/Datasets/{ENC}/Attachments", timeout=10,
                    json={"caption": "", "ownerGroup": "other", "id": "mine"})
    assert resp.status_code == 201
    assert resp.json()["ownerGroup"] == "99001234-dmgt" and "relationships" not in resp.json()
    found = attachments_where(api, v4)
    assert [a["aid"] for a in found] == [resp.json()["id"]]
    assert found[0]["relationships"][0]["targetId"] == PID and "datasetId" not in found[0]
    assert [a["id"] for a in scicat_server.attachments(PID)] == [resp.json()["id"]]
    published = api.post(f"{scicat_server.url}/Datasets/{ENC}/Attachments", timeout=10,
                         json={"caption": "", "ownerGroup": "g", "isPublished": True})
    assert published.json()["message"] == ["property isPublished should not exist"]


def _delete_everything(api: requests.Session, server: Any) -> Dict[str, int]:
    v3, v4 = server.url, server.url_for("v4")
    api.post(f"{v3}/Datasets", json=raw_dataset(), timeout=10)
    block_id = api.post(f"{v3}/OrigDatablocks", json=datablock(), timeout=10).json()["id"]
    v3_att = api.post(f"{v3}/Datasets/{ENC}/Attachments", timeout=10,
                      json={"caption": "", "ownerGroup": "g"}).json()["id"]
    v4_att = api.post(f"{v4}/attachments", timeout=10, json={
        "caption": "", "ownerGroup": "g", "isPublished": False,
        "relationships": [{"targetId": PID, "targetType": "dataset"}]}).json()["aid"]
    return {
        "v3 block": api.delete(f"{v3}/OrigDatablocks/{block_id}", timeout=10).status_code,
        "v4 block": api.delete(f"{v4}/origdatablocks/{block_id}", timeout=10).status_code,
        "v4 unknown block": api.delete(f"{v4}/origdatablocks/x", timeout=10).status_code,
        "v3 attachment": api.delete(f"{v3}/Datasets/{ENC}/Attachments/{v3_att}",
                                    timeout=10).status_code,
        "v4 attachment": api.delete(f"{v4}/attachments/{v4_att}", timeout=10).status_code,
        "v4 dataset": api.delete(f"{v4}/datasets/{ENC}", timeout=10).status_code,
    }


@pytest.mark.devserver(datablock_delete_allowed=False)
def test_delete_refused_outside_delete_groups(scicat_server: Any,
                                              api: requests.Session) -> None:
    statuses = _delete_everything(api, scicat_server)
    assert statuses == {"v3 block": 403, "v4 block": 403, "v4 unknown block": 403,
                        "v3 attachment": 200, "v4 attachment": 200, "v4 dataset": 403}
    resp = api.delete(f"{scicat_server.url}/OrigDatablocks/x", timeout=10)
    assert resp.json() == FORBIDDEN
    admin = session(scicat_server, "admin", "admin-pass")
    assert admin.delete(f"{scicat_server.url}/Datasets/{ENC}", timeout=10).status_code == 403
    assert len(scicat_server.datablocks(PID)) == 1
    patched = api.patch(f"{scicat_server.url}/OrigDatablocks/"
                        f"{scicat_server.datablocks(PID)[0]['id']}", json={"size": 1},
                        timeout=10)
    assert patched.status_code == 200


def test_delete_switch_at_runtime(scicat_server: Any, api: requests.Session) -> None:
    assert scicat_server.datablock_delete_allowed
    admin = scicat_server.login_url.replace("/api/v3", "/__devserver__")
    resp = requests.post(f"{admin}/permissions", json={"datablock_delete_allowed": False},
                         timeout=10)
    assert resp.json() == {"datablock_delete_allowed": False}
    assert requests.get(f"{admin}/permissions", timeout=10).json() == resp.json()
    assert requests.post(f"{admin}/permissions", json={"datablock_delete_allowed": "no"},
                         timeout=10).status_code == 400
    assert api.delete(f"{scicat_server.url}/OrigDatablocks/x", timeout=10).status_code == 403
    scicat_server.set_datablock_delete_allowed(True)
    statuses = _delete_everything(api, scicat_server)
    assert statuses == {"v3 block": 200, "v4 block": 404, "v4 unknown block": 404,
                        "v3 attachment": 200, "v4 attachment": 200, "v4 dataset": 200}
    assert scicat_server.datasets() == []


def test_console_script_forbid_datablock_delete(tmp_path: Any) -> None:
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(__file__)))
    proc = subprocess.Popen(
        [sys.executable, "-m", "scingestor.devserver", "--port", str(port),
         "--forbid-datablock-delete"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = proc.stdout.readline().strip()
        resp = requests.post(f"{url}/Users/login", timeout=10,
                             json={"username": "ingestor", "password": "12342345"})
        assert resp.status_code == 201 and resp.text == ""
        token = requests.post(f"{url}/auth/login", timeout=10, json={
            "username": "ingestor", "password": "12342345"}).json()["access_token"]
        resp = requests.delete(f"{url.replace('/v3', '/v4')}/origdatablocks/x", timeout=10,
                               headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code == 403 and resp.json() == FORBIDDEN
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_latency_option_of_the_command(tmp_path):
    """``scingestor-devserver --latency-ms`` sets the delay of every API answer."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "scingestor.devserver", "--port", "0",
                             "--latency-ms", "250"], stdout=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    try:
        url = proc.stdout.readline().strip()
        admin = url.split("/api/")[0] + "/__devserver__/faults"
        assert requests.get(admin, timeout=10).json()["latency"] == 0.25
    finally:
        proc.terminate()
        proc.wait(timeout=10)
