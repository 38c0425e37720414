"""The API dialect (v3/v4 paths and conversions) and the comparison with server copies."""

from __future__ import annotations

import json
import logging

from scingestor.config import config_from_mapping
from scingestor.scicat.api import ApiDialect, to_v4_attachment, to_v4_dataset
from scingestor.scicat.compare import as_instant, compare_dataset, differences
from scingestor.scicat.urls import api_version, v3_root

logger = logging.getLogger(__name__)

V3_DOC = {
    "pid": "99001234/scan_1", "type": "raw", "proposalId": "99001234",
    "principalInvestigator": "pi@example.org", "sampleId": "s-1", "instrumentId": "",
    "creationLocation": "/DESY/PETRA III/P00", "datasetName": "scan_1",
    "scientificMetadata": {"temperature": {"value": 3, "unit": "K"}},
}


def dialect(url: str, **extra) -> ApiDialect:
    return ApiDialect(config_from_mapping({"scicat_url": url, **extra}))


def test_the_version_is_read_from_the_url():
    assert api_version("https://scicat.example.org/api/v4") == 4
    assert api_version("https://scicat.example.org/api/v4/") == 4
    assert api_version("https://scicat.example.org/api/v3") == 3
    assert api_version("https://scicat.example.org/api") == 3
    assert v3_root("https://scicat.example.org/api/v4/") == "https://scicat.example.org/api/v3"
    assert v3_root("http://h/api/v3") == "http://h/api/v3"


def test_v3_dataset_becomes_a_v4_document():
    converted = to_v4_dataset(V3_DOC)
    for old in ("proposalId", "principalInvestigator", "sampleId", "instrumentId"):
        assert old not in converted
    assert converted["proposalIds"] == ["99001234"]
    assert converted["principalInvestigators"] == ["pi@example.org"]
    assert converted["sampleIds"] == ["s-1"]
    assert "instrumentIds" not in converted  # an empty value is not carried over
    assert converted["scientificMetadata"] == V3_DOC["scientificMetadata"]
    derived = to_v4_dataset({"type": "derived", "investigator": "a@b.de", "version": "3",
                             "inputDatasets": ["x"], "usedSoftware": "nxstools"})
    assert derived == {"type": "derived", "principalInvestigators": ["a@b.de"],
                       "inputDatasets": ["x"], "usedSoftware": ["nxstools"]}
    # a document already in v4 form is left as it is
    assert to_v4_dataset(converted) == converted


def test_v3_attachment_becomes_a_v4_document():
    att = {"thumbnail": "data:x", "caption": "c", "ownerGroup": "g", "datasetId": "old",
           "id": "client-chosen"}
    converted = to_v4_attachment(att, "99/scan")
    assert converted == {"thumbnail": "data:x", "caption": "c", "ownerGroup": "g",
                         "isPublished": False,
                         "relationships": [{"targetId": "99/scan", "targetType": "dataset"}]}


def test_paths_of_both_versions():
    v3 = dialect("http://h/api/v3")
    assert v3.dataset("99/scan") == "Datasets/99%2Fscan"
    assert v3.datablock_listing("99/scan") == ("Datasets/99%2Fscan/OrigDatablocks", None)
    assert v3.attachment_listing("99/scan") == ("Datasets/99%2Fscan/Attachments", None)
    assert v3.attachment("99/scan", "a1") == "Datasets/99%2Fscan/Attachments/a1"
    assert v3.attachment_update_method is None  # a v3 PUT unlinks the attachment
    v4 = dialect("http://h/api/v4")
    assert v4.dataset("99/scan") == "datasets/99%2Fscan"
    path, query = v4.datablock_listing("99/scan")
    assert path == "origdatablocks"
    assert json.loads(query["filter"]) == {"where": {"datasetId": "99/scan"}}
    path, query = v4.attachment_listing("99/scan")
    assert path == "attachments"
    assert json.loads(query["filter"]) == {"where": {"relationships.targetId": "99/scan"}}
    assert v4.attachment("99/scan", "a1") == "attachments/a1"
    assert v4.attachment_update_method == "PATCH"
    # an explicitly configured path is honoured under v4 too
    assert dialect("http://h/api/v4", scicat_datasets_path="RawDatasets").datasets == "RawDatasets"


def test_v4_patch_keeps_the_sizes_the_server_computed():
    server = {"size": 43905, "numberOfFiles": 4}
    assert dialect("http://h/api/v4").patch_body({"keywords": ["a"]}, server) == {
        "keywords": ["a"], "size": 43905, "numberOfFiles": 4}
    assert dialect("http://h/api/v3").patch_body({"keywords": ["a"]}, server) == {
        "keywords": ["a"]}


def test_dates_are_compared_as_instants():
    assert as_instant("2024-03-08T09:00:00.000000+0000") == as_instant("2024-03-08T09:00:00.000Z")
    assert as_instant("2024-03-05T10:05:00+01:00") == as_instant("2024-03-05T09:05:00Z")
    assert as_instant("2024-03-05T10:05:00.123456Z") == as_instant("2024-03-05T10:05:00.123Z")
    assert as_instant("2024-03-05T10:05:00Z") != as_instant("2024-03-05T10:05:01Z")
    assert as_instant("scan_1") is None and as_instant(3) is None


def test_what_only_the_server_adds_is_no_difference():
    local = to_v4_dataset(dict(V3_DOC, creationTime="2024-03-08T09:00:00.000000+0000"))
    server = dict(local, _id="x", __v=0, createdAt="t", instrumentIds=[None], packedSize=0,
                  creationTime="2024-03-08T09:00:00.000Z", relationships=[],
                  datasetlifecycle={"archivable": True}, history=[])
    server["scientificMetadata"] = {
        "temperature": {"value": 3, "unit": "K", "valueSI": 3, "unitSI": "K"}}
    assert compare_dataset(server, local, ()) == ([], [])
    changed = json.loads(json.dumps(local))
    changed["scientificMetadata"]["temperature"]["value"] = 4
    assert compare_dataset(server, changed, ()) == (
        [], ["scientificMetadata.temperature.value"])
    # an entry the scan no longer has is a change
    removed = dict(local, scientificMetadata={})
    assert compare_dataset(server, removed, ())[1] == ["scientificMetadata.temperature"]
    # a changed core field is found, one in the skip list is not
    assert compare_dataset(server, dict(local, datasetName="other"), ())[0] == ["datasetName"]
    assert compare_dataset(server, dict(local, datasetName="other"), ("datasetName",)) == (
        [], [])


def test_lists_are_compared_element_by_element():
    server = {"techniques": [{"name": "saxs", "_id": "1"}]}
    assert differences(server, {"techniques": [{"name": "saxs"}]}) == []
    assert differences(server, {"techniques": [{"name": "waxs"}]}) == ["techniques"]
    assert differences(server, {"techniques": []}) == ["techniques"]


def test_values_the_server_stores_differently_are_no_difference():
    # a derived dataset's usedSoftware string comes back as a one-element list
    assert differences({"usedSoftware": ["nxstools"]}, {"usedSoftware": "nxstools"}) == []
    assert differences({"usedSoftware": ["a", "b"]}, {"usedSoftware": "a"}) == [
        "usedSoftware"]
    # the v3 server keeps "investigator" as "principalInvestigator"
    local = {"type": "derived", "investigator": "a@b.de", "usedSoftware": "nxstools"}
    server = {"type": "derived", "investigator": None, "principalInvestigator": "a@b.de",
              "principalInvestigators": ["a@b.de"], "usedSoftware": ["nxstools"]}
    v3 = dialect("http://h/api/v3")
    assert compare_dataset(server, v3.comparable_dataset(local), ()) == ([], [])
    assert compare_dataset(server, v3.comparable_dataset(dict(local, investigator="x@y.de")),
                           ()) == (["principalInvestigator"], [])
