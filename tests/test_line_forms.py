"""Every list line form end to end through the service, and the bodies that reach SciCat."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from scingestor.scicat.api import to_v4_dataset
from scingestor.status import State
from scingestor.testing.setup import wait_for

BT = "99001234"

# every test here runs against both SciCat API versions of the dev server
pytestmark = pytest.mark.usefixtures("api_version")
NXSFILEINFO = os.path.join(os.path.dirname(sys.executable), "nxsfileinfo")


def test_posted_dataset_equals_nxsfileinfo_output(
    beamtime_factory, scicat_server, service_factory, tmp_path
):
    f = beamtime_factory
    master = f.write_nexus_scan("cmp_00001", png=True)
    f.append_list(None, "cmp_00001")
    service_factory()
    wait_for(lambda: scicat_server.dataset(f"{BT}/cmp_00001"))
    posted = json.loads(scicat_server.requests_matching("POST", r"/Datasets$")[0].body)
    expected_path = tmp_path / "expected.scan.json"
    env = dict(os.environ, PATH=os.path.dirname(NXSFILEINFO) + ":" + os.environ["PATH"])
    subprocess.run(
        [
            NXSFILEINFO,
            "metadata",
            "-k4",
            "-o",
            str(expected_path),
            "--id-format",
            "{proposalId}.{beamtimeId}",
            "-z",
            "",
            "-e",
            "",
            "-b",
            f.metadata_path,
            "-p",
            f"{BT}/cmp_00001",
            "-w",
            f"{BT}-dmgt",
            "-c",
            f"{BT}-dmgt,{BT}-clbt,{BT}-part,p00dmgt,p00staff",
            master,
            "-r",
            "raw",
            "--add-empty-units",
        ],
        check=True,
        env=env,
        capture_output=True,
    )
    expected = json.loads(expected_path.read_text())
    if scicat_server.api_version == "v4":  # the same file, sent in v4 form
        expected = to_v4_dataset(expected)
    assert posted == expected


def test_detector_dirs_multi_entry_fio_and_missing_master(
    beamtime_factory, scicat_server, service_factory
):
    f = beamtime_factory
    f.write_nexus_scan("det_00001")
    f.write_detector_files("pilatus1", 2, detector="frame")
    lambda_dir = f.make_scandir("lambda")
    with open(os.path.join(lambda_dir, "l_00001.h5"), "wb") as handle:
        handle.write(b"\x89HDF")
    f.write_nexus_scan("multi", multi_entries=["scan_1", "scan_2"])
    f.write_fio_scan("fio_00001")
    f.append_list(
        None,
        "det_00001 pilatus1 ../lambda/",
        "multi::/scan_1;multi_00001",
        "multi::/scan_2;multi_00002",
        "fio_00001",
        "nofile_00001",
    )
    service = service_factory()
    for name in ("det_00001", "multi_00001", "multi_00002", "fio_00001", "nofile_00001"):
        wait_for(lambda n=name: scicat_server.dataset(f"{BT}/{n}"))
    service.wait_idle()
    paths = [
        item["path"] for item in scicat_server.datablocks(f"{BT}/det_00001")[0]["dataFileList"]
    ]
    assert "det_00001.nxs" in paths
    assert any(p.startswith("pilatus1/frame_") for p in paths)
    assert "../lambda/l_00001.h5" in paths or any("lambda/l_00001.h5" in p for p in paths)
    for name in ("multi_00001", "multi_00002"):
        blocks = scicat_server.datablocks(f"{BT}/{name}")
        assert any(item["path"] == "multi.nxs" for item in blocks[0]["dataFileList"])
    assert not [n for n in os.listdir(f.scandir) if n.startswith("_tmp_scingestor_")]
    fio = scicat_server.dataset(f"{BT}/fio_00001")
    assert fio["type"] == "raw"
    nofile = scicat_server.dataset(f"{BT}/nofile_00001")
    assert nofile["description"] == "Demo beamtime title"
    assert scicat_server.datablocks(f"{BT}/nofile_00001") == []
    assert service.status().failed_count == 0


@pytest.mark.parametrize(
    "strategy, expect", [("patch", "PATCH"), ("mixed", "new"), ("create", "new"), ("no", "nothing")]
)
def test_reingest_line_with_each_strategy(
    beamtime_factory, scicat_server, service_factory, strategy, expect
):
    f = beamtime_factory
    f.write_nexus_scan("st_00001")
    f.append_list(None, "st_00001")
    service = service_factory(dataset_update_strategy=strategy)
    wait_for(lambda: len(f.read_ingested()) == 1)
    path = os.path.join(f.scandir, "st_00001.scan.json")
    doc = json.load(open(path))
    doc["contactEmail"] = "new.contact@example.org"
    with open(path, "w") as handle:
        json.dump(doc, handle)
    os.utime(path, (os.path.getmtime(path) + 5,) * 2)
    f.append_list(None, "st_00001:1718000000.1")
    wait_for(lambda: len(f.read_ingested()) == 2)
    service.wait_idle()
    patches = scicat_server.requests_matching("PATCH", r"/Datasets/")
    if expect == "PATCH":
        assert len(patches) == 1
        assert "pid" not in json.loads(patches[0].body)
        assert scicat_server.dataset(f"{BT}/st_00001")["contactEmail"] == "new.contact@example.org"
    elif expect == "new":
        assert not patches
        assert (
            scicat_server.dataset(f"{BT}/st_00001/2")["contactEmail"] == "new.contact@example.org"
        )
        assert scicat_server.datablocks(f"{BT}/st_00001/2")
    else:
        assert not patches and scicat_server.dataset(f"{BT}/st_00001/2") is None
    assert service.status().failed_count == 0


def test_refused_for_20_seconds_then_everything_goes_in_once(
    beamtime_factory, scicat_server, service_factory
):
    f = beamtime_factory
    names = [f"r_{index:05d}" for index in range(1, 5)]
    for name in names:
        f.write_nexus_scan(name)
    service = service_factory(retry_backoff_max=2.0)
    scicat_server.faults.refuse_connections(20.0)
    f.append_list(None, *names)
    wait_for(lambda: service.status().state is State.ALARM, timeout=30)
    wait_for(lambda: len(scicat_server.datasets()) == 4, timeout=90)
    wait_for(lambda: len(f.read_ingested()) == 4, timeout=30)
    posts = [r for r in scicat_server.requests_matching("POST", r"/Datasets$") if r.status < 300]
    assert len(posts) == 4
    assert len(scicat_server.datablocks()) == 4
    wait_for(lambda: service.status().state is State.ON, timeout=30)


@pytest.mark.parametrize("content", ["", None])
def test_empty_or_missing_credential_file(
    beamtime_factory, scicat_server, service_factory, tmp_path, content
):
    f = beamtime_factory
    credentials = tmp_path / "pwd"
    if content is not None:
        credentials.write_text(content)
    f.write_nexus_scan("c_00001")
    f.append_list(None, "c_00001")
    service = service_factory(ingestor_credential_file=str(credentials))
    assert "pwd" in service.credentials_problem()
    wait_for(lambda: service.status().state is State.ALARM)
    status = service.status()
    assert "pwd" in status.last_error
    assert scicat_server.datasets() == []
    credentials.write_text("12342345\n")
    wait_for(lambda: scicat_server.dataset(f"{BT}/c_00001"), timeout=30)


def test_beamtime_and_scan_dirs_appearing_while_running(
    tmp_path, scicat_server, beamtime_factory, service_factory
):
    from scingestor.testing import BeamtimeFactory

    base = tmp_path / "base"
    base.mkdir()
    service = service_factory(beamtime_dirs=[], beamtime_base_dir=str(base))
    later = BeamtimeFactory(base, beamtime_id="99001299", beamtime_subdir="bt2")
    sub = later.make_scandir("raw/deeper")
    later.write_nexus_scan("late_00001", scandir=sub)
    later.append_list(sub, "late_00001")
    wait_for(lambda: scicat_server.dataset("99001299/late_00001"), timeout=30)
    assert later.metadata_path in service.watched_beamtimes()


def test_groups_from_the_proposal(beamtime_factory, scicat_server, service_factory):
    f = beamtime_factory
    scicat_server.add_proposal(
        {
            "proposalId": f"11112222.{BT}",
            "ownerGroup": "mygroup",
            "accessGroups": ["group1", "group2"],
            "title": "t",
            "email": "pi@example.org",
        }
    )
    f.write_nexus_scan("grp_00001")
    f.append_list(None, "grp_00001")
    service_factory(owner_access_groups_from_proposal=True)
    doc = wait_for(lambda: scicat_server.dataset(f"{BT}/grp_00001"))
    assert doc["ownerGroup"] == "mygroup"
    assert doc["accessGroups"] == ["group1", "group2"]
    (block,) = wait_for(lambda: scicat_server.datablocks(f"{BT}/grp_00001"))
    assert block["ownerGroup"] == "mygroup"


def test_lost_answer_to_a_datablock_post_does_not_duplicate(
    beamtime_factory, scicat_server, service_factory
):
    f = beamtime_factory
    f.write_nexus_scan("lost_00001")
    scicat_server.faults.drop_next(1, method="POST", path=r"OrigDatablocks$")
    f.append_list(None, "lost_00001")
    service = service_factory()
    wait_for(lambda: len(f.read_ingested()) == 1, timeout=30)
    service.wait_idle()
    assert len(scicat_server.datablocks(f"{BT}/lost_00001")) == 1
    assert len(scicat_server.datasets()) == 1


def test_existing_unchanged_dataset_still_gets_its_datablock(
    beamtime_factory, scicat_server, service_factory
):
    f = beamtime_factory
    f.write_nexus_scan("half_00001")
    scicat_server.faults.fail_next(1, status=503, method="POST", path=r"OrigDatablocks$")
    f.append_list(None, "half_00001")
    service = service_factory()
    wait_for(lambda: len(f.read_ingested()) == 1, timeout=30)
    service.wait_idle()
    assert len(scicat_server.datablocks(f"{BT}/half_00001")) == 1
    dataset_posts = [
        r for r in scicat_server.requests_matching("POST", r"/Datasets$") if r.status < 300
    ]
    assert len(dataset_posts) == 1
