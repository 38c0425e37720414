"""The beamtime factory writes real files; nxsfileinfo output from them is accepted."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from typing import Any, Dict, List

import h5py
import pytest
import requests

from scingestor.testing import BeamtimeFactory, beamtime_metadata

logger = logging.getLogger(__name__)

BT = "99001234"
GROUPS = "99001234-dmgt,99001234-clbt,99001234-part,p00dmgt,p00staff"
NXSFILEINFO = (shutil.which("nxsfileinfo", path=os.path.dirname(sys.executable))
               or shutil.which("nxsfileinfo") or "nxsfileinfo")


def nxsfileinfo(*args: str) -> None:
    """Run the real generator; fail with its stderr if it fails."""
    proc = subprocess.run([NXSFILEINFO, *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def load(path: str) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def login(server: Any) -> requests.Session:
    sess = requests.Session()
    resp = sess.post(f"{server.url}/auth/login", timeout=10,
                     json={"username": "ingestor", "password": "12342345"})
    sess.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"
    return sess


def generate_dataset(factory: BeamtimeFactory, scan: str, master: str, *extra: str) -> str:
    out = os.path.join(factory.scandir, f"{scan}.scan.json")
    args = ["metadata", "-k4", "-o", out, "--id-format", "{proposalId}.{beamtimeId}",
            "-z", "", "-e", "", "-b", factory.metadata_path, "-p", f"{BT}/{scan}",
            "-w", f"{BT}-dmgt", "-c", GROUPS]
    if master:
        args.append(master)
    nxsfileinfo(*args, "-r", "raw", *extra)
    return out


def generate_datablock(factory: BeamtimeFactory, scan: str) -> str:
    out = os.path.join(factory.scandir, f"{scan}.origdatablock.json")
    nxsfileinfo("origdatablock", "-s", "*.pyc,*.origdatablock.json,*.scan.json,"
                "*.attachment.json,*~", "-r", "", "-p", f"{BT}/{scan}", "-w", f"{BT}-dmgt",
                "-c", GROUPS, "-o", out, os.path.join(factory.scandir, scan))
    return out


def generate_attachment(factory: BeamtimeFactory, scan: str) -> str:
    out = os.path.join(factory.scandir, f"{scan}.attachment.json")
    nxsfileinfo("attachment", "-w", f"{BT}-dmgt", "-c", GROUPS, "-n", "", "-o", out,
                os.path.join(factory.scandir, f"{scan}.png"))
    return out


def post_dataset(server: Any, api: requests.Session, doc: Dict[str, Any]) -> None:
    resp = api.post(f"{server.url}/Datasets", json=doc, timeout=10)
    assert resp.status_code == 201, resp.text


# -- factory output --------------------------------------------------------------------


def test_beamtime_metadata_file(beamtime_factory: BeamtimeFactory) -> None:
    doc = load(beamtime_factory.metadata_path)
    assert os.path.basename(beamtime_factory.metadata_path) == f"beamtime-metadata-{BT}.json"
    assert doc["beamtimeId"] == BT and doc["proposalId"] == "11112222"
    assert doc["corePath"] == f"/asap3/petra3/gpfs/p00/2024/data/{BT}"
    assert doc["pi"]["email"] == "pi@example.org"
    assert "ownerGroup" not in doc and "accessGroups" not in doc
    assert os.path.isdir(beamtime_factory.scandir)


def test_beamtime_metadata_parameters(tmp_path: Any) -> None:
    factory = BeamtimeFactory(tmp_path, beamtime_id="99001236", proposal_id="42",
                              beamline="p11", proposal_type="P", core_path="",
                              owner_group="mygroup", access_groups=["g1", "g2"],
                              scan_subdir="raw/special")
    doc = load(factory.metadata_path)
    assert (doc["beamtimeId"], doc["proposalId"], doc["beamline"], doc["proposalType"]) == (
        "99001236", "42", "p11", "P")
    assert "corePath" not in doc
    assert doc["ownerGroup"] == "mygroup" and doc["accessGroups"] == ["g1", "g2"]
    assert factory.scandir.endswith(os.path.join("raw", "special"))
    factory.write_metadata(title="changed")
    assert load(factory.metadata_path)["title"] == "changed"
    assert beamtime_metadata()["beamtimeId"] == BT


def test_nexus_scan_structure(beamtime_factory: BeamtimeFactory) -> None:
    path = beamtime_factory.write_nexus_scan("myscan_00001", points=50, detector_files=3,
                                             png=True)
    with h5py.File(path, "r") as handle:
        entry = handle["scan"]
        assert entry.attrs["NX_class"] == "NXentry"
        assert entry["title"][()].decode() == "demo energy scan"
        data = entry["data"]
        assert data.attrs["signal"] == "counts" and data.attrs["axes"] == "energy"
        assert data["counts"].shape == (50,)
        assert entry["instrument"].attrs["NX_class"] == "NXinstrument"
        assert entry["sample"].attrs["NX_class"] == "NXsample"
    detectors = sorted(os.listdir(os.path.join(beamtime_factory.scandir, "myscan_00001")))
    assert detectors == [f"pilatus_{i:05d}.cbf" for i in range(3)]
    with open(os.path.join(beamtime_factory.scandir, "myscan_00001.png"), "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


def test_nexus_layout_options(beamtime_factory: BeamtimeFactory) -> None:
    nested = beamtime_factory.write_nexus_scan("sub_00001", subdir_layout=True)
    assert nested == os.path.join(beamtime_factory.scandir, "sub_00001", "sub_00001.nxs")
    multi = beamtime_factory.write_nexus_scan("multi", multi_entries=["scan11", "scan12"])
    with h5py.File(multi, "r") as handle:
        assert sorted(handle) == ["scan11", "scan12"]


def test_fio_scan_sections(beamtime_factory: BeamtimeFactory) -> None:
    path = beamtime_factory.write_fio_scan("myscan_00003", points=5)
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    for marker in ("%c", "%p", "%d"):
        assert marker in lines
    data = lines[lines.index("%d") + 3:-1]
    assert len(data) == 5
    assert lines[-1].startswith("! Acquisition ended at ")


def test_append_list_like_sardana(beamtime_factory: BeamtimeFactory) -> None:
    path = beamtime_factory.append_list(None, "myscan_00001")
    beamtime_factory.append_list(None, "myscan_00002", "__command__ stop")
    assert path == os.path.join(beamtime_factory.scandir, f"scicat-datasets-{BT}.lst")
    with open(path, encoding="utf-8") as handle:
        assert handle.read() == "\nmyscan_00001\nmyscan_00002\n__command__ stop"
    other = beamtime_factory.make_scandir("raw/special")
    beamtime_factory.append_list(other, "x_1")
    assert os.path.exists(os.path.join(other, f"scicat-datasets-{BT}.lst"))
    assert beamtime_factory.ingested_path(var_dir="/var/sci") == (
        "/var/sci" + os.path.join(beamtime_factory.scandir, f"scicat-ingested-datasets-{BT}.lst"))
    assert beamtime_factory.read_ingested() == []


# -- nxsfileinfo output accepted by the dev server -------------------------------------


def test_nexus_scan_documents_are_accepted(beamtime_factory: BeamtimeFactory,
                                           scicat_server: Any) -> None:
    master = beamtime_factory.write_nexus_scan("myscan_00001", points=100, detector_files=2,
                                               png=True)
    dataset = load(generate_dataset(beamtime_factory, "myscan_00001", master,
                                    "--add-empty-units"))
    assert dataset["proposalId"] == f"11112222.{BT}"
    assert dataset["scientificMetadata"]["data"]["signal"] == "counts"
    assert dataset["techniques"] and dataset["sampleId"] == "H2O/42"
    block = load(generate_datablock(beamtime_factory, "myscan_00001"))
    assert sorted(entry["path"] for entry in block["dataFileList"]) == [
        "myscan_00001.nxs", "myscan_00001.png", "myscan_00001/pilatus_00000.cbf",
        "myscan_00001/pilatus_00001.cbf"]
    attachment = load(generate_attachment(beamtime_factory, "myscan_00001"))
    assert attachment["thumbnail"].startswith("data:image/png;base64,")
    api = login(scicat_server)
    post_dataset(scicat_server, api, dataset)
    resp = api.post(f"{scicat_server.url}/OrigDatablocks", json=block, timeout=10)
    assert resp.status_code == 201, resp.text
    attachment["datasetId"] = f"{BT}/myscan_00001"
    resp = api.post(f"{scicat_server.url}/Datasets/{BT}%2Fmyscan_00001/Attachments",
                    json=attachment, timeout=10)
    assert resp.status_code == 201, resp.text
    stored = scicat_server.dataset(f"{BT}/myscan_00001")
    assert stored["numberOfFiles"] == 4 and stored["size"] == block["size"]
    assert len(scicat_server.attachments(f"{BT}/myscan_00001")) == 1


def test_nexus_oned_and_scicat3_documents_are_accepted(beamtime_factory: BeamtimeFactory,
                                                       scicat_server: Any) -> None:
    master = beamtime_factory.write_nexus_scan("myscan_00002", points=8)
    out = os.path.join(beamtime_factory.scandir, "k3.json")
    nxsfileinfo("metadata", "-k3", "-o", out, "-b", beamtime_factory.metadata_path, "-p",
                f"{BT}/myscan_00002", "-x", "0o662", "-n",
                "nexdatas_source,nexdatas_strategy,units,NX_class", master, "--oned",
                "--max-oned-size", "4", "-r", "raw")
    doc = load(out)
    assert "createdAt" in doc and "updatedAt" in doc
    post_dataset(scicat_server, login(scicat_server), doc)


def test_fio_scan_dataset_is_accepted(beamtime_factory: BeamtimeFactory,
                                      scicat_server: Any) -> None:
    master = beamtime_factory.write_fio_scan("myscan_00003", points=3)
    doc = load(generate_dataset(beamtime_factory, "myscan_00003", master, "--oned"))
    assert doc["scientificMetadata"]["parameters"] == {"energy": 8980.0, "sample": "water"}
    assert doc["creationTime"] == "2024-03-05T10:10:05.000000+0000"
    post_dataset(scicat_server, login(scicat_server), doc)


def test_no_master_file_dataset_is_accepted(beamtime_factory: BeamtimeFactory,
                                            scicat_server: Any) -> None:
    doc = load(generate_dataset(beamtime_factory, "myscan_00004", "", "--add-empty-units"))
    assert doc["scientificMetadata"] == {"DOOR_proposalId": "11112222", "beamtimeId": BT}
    post_dataset(scicat_server, login(scicat_server), doc)


@pytest.mark.parametrize("raw", [False, True])
def test_group_metadata_is_accepted(beamtime_factory: BeamtimeFactory, scicat_server: Any,
                                    raw: bool) -> None:
    api = login(scicat_server)
    metas: List[str] = []
    for scan in ("myscan_00001", "myscan_00002"):
        master = beamtime_factory.write_nexus_scan(scan, points=5, png=True)
        metas.append(generate_dataset(beamtime_factory, scan, master, "--add-empty-units"))
        generate_datablock(beamtime_factory, scan)
        generate_attachment(beamtime_factory, scan)
        post_dataset(scicat_server, api, load(metas[-1]))
    base = os.path.join(beamtime_factory.scandir, "mycalib")
    for scan in ("myscan_00001", "myscan_00002"):
        meta = os.path.join(beamtime_factory.scandir, scan)
        nxsfileinfo("groupmetadata", "mycalib", "-m", f"{meta}.scan.json", "-d",
                    f"{meta}.origdatablock.json", "-a", f"{meta}.attachment.json", "-o",
                    f"{base}.scan.json", "-l", f"{base}.origdatablock.json", "-t",
                    f"{base}.attachment.json", "-p", f"{BT}/mycalib", "-f", "-k4",
                    *(["--raw"] if raw else []))
    group = load(f"{base}.scan.json")
    assert group["type"] == ("raw" if raw else "derived")
    post_dataset(scicat_server, api, group)
    for path in load(f"{base}.origdatablock.json"):
        block = load(path)
        block["datasetId"] = f"{BT}/mycalib"
        resp = api.post(f"{scicat_server.url}/OrigDatablocks", json=block, timeout=10)
        assert resp.status_code == 201, resp.text
    assert len(scicat_server.datablocks(f"{BT}/mycalib")) == 2
