"""Measurement datasets: scans grouped between ``__command__ start`` and ``stop``.

README "Measurements" describes the behaviour tested here.
"""

from __future__ import annotations

import json
import logging

import pytest

from scingestor.testing.setup import wait_for

BT = "99001234"

# every test here runs against both SciCat API versions of the dev server
pytestmark = pytest.mark.usefixtures("api_version")


def write_scans(f, *names):
    for name in names:
        f.write_nexus_scan(name, png=True)


def dataset_posts(server, pid):
    return [
        r
        for r in server.requests_matching("POST", r"/Datasets$")
        if r.status < 300 and json.loads(r.body).get("pid", "").startswith(pid)
    ]


def test_start_stop_around_three_scans(beamtime_factory, scicat_server, service_factory):
    f = beamtime_factory
    write_scans(f, "scan_00001", "scan_00002", "scan_00003")
    f.append_list(
        None,
        "__command__ start calibA",
        "scan_00001",
        "scan_00002",
        "scan_00003",
        "__command__ stop",
        "calibA",
    )
    service = service_factory()
    measurement = wait_for(lambda: scicat_server.dataset(f"{BT}/calibA"))
    service.wait_idle()
    assert measurement["type"] == "derived"
    assert sorted(measurement["inputDatasets"]) == [f"{BT}/scan_0000{i}" for i in (1, 2, 3)]
    assert "calibA" in measurement["keywords"] and "measurement" in measurement["keywords"]
    blocks = scicat_server.datablocks(f"{BT}/calibA")
    assert len(blocks) == 3
    assert all(block["datasetId"] == f"{BT}/calibA" for block in blocks)
    assert len(scicat_server.attachments(f"{BT}/calibA")) == 3
    for index in (1, 2, 3):
        scan = scicat_server.dataset(f"{BT}/scan_0000{index}")
        assert "calibA" in scan["keywords"]
        # the scan's own datablock still points at the scan (weakness 7.3 not reproduced)
        member = json.load(open(f"{f.scandir}/scan_0000{index}.origdatablock.json"))
        assert member["datasetId"] == f"{BT}/scan_0000{index}"
    assert len(dataset_posts(scicat_server, f"{BT}/calibA")) == 1
    assert service.status().current_measurements == {}


def test_update_by_timestamp_line_patches_the_measurement(
    beamtime_factory, scicat_server, service_factory
):
    f = beamtime_factory
    write_scans(f, "scan_00001", "scan_00002", "scan_00003")
    f.append_list(
        None, "__command__ start calibA", "scan_00001", "scan_00002", "__command__ stop", "calibA"
    )
    service_factory()
    wait_for(lambda: scicat_server.dataset(f"{BT}/calibA"))
    f.append_list(
        None, "__command__ start calibA", "scan_00003", "__command__ stop", "calibA:1718000000.5"
    )
    wait_for(lambda: len(scicat_server.dataset(f"{BT}/calibA")["inputDatasets"]) == 3)
    wait_for(lambda: len(scicat_server.datablocks(f"{BT}/calibA")) == 3)
    wait_for(lambda: len(scicat_server.attachments(f"{BT}/calibA")) == 3)
    assert scicat_server.requests_matching("PATCH", r"/Datasets/99001234%2FcalibA$")
    assert len(dataset_posts(scicat_server, f"{BT}/calibA")) == 1


def test_service_commands_close_the_previous_measurement(
    beamtime_factory, scicat_server, service_factory
):
    f = beamtime_factory
    write_scans(f, "a_00001", "b_00001")
    open(f.list_path(), "a").close()
    service = service_factory()
    wait_for(lambda: f.scandir in service.watched_scandirs())
    service.start_measurement("first", f.scandir)
    f.append_list(None, "a_00001")
    wait_for(lambda: scicat_server.dataset(f"{BT}/a_00001"))
    service.start_measurement("second", f.scandir)  # closes 'first'
    f.append_list(None, "b_00001")
    service.stop_measurement(f.scandir)
    first = wait_for(lambda: scicat_server.dataset(f"{BT}/first"))
    second = wait_for(lambda: scicat_server.dataset(f"{BT}/second"))
    assert first["inputDatasets"] == [f"{BT}/a_00001"]
    assert second["inputDatasets"] == [f"{BT}/b_00001"]


def test_make_measurement_adds_the_last_scan(beamtime_factory, scicat_server, service_factory):
    f = beamtime_factory
    write_scans(f, "solo_00001")
    f.append_list(None, "solo_00001")
    service = service_factory()
    wait_for(lambda: scicat_server.dataset(f"{BT}/solo_00001"))
    service.make_measurement("single", f.scandir)
    wait_for(lambda: service.status().current_measurements.get(f.scandir) == "single")
    service.stop_measurement(f.scandir)
    doc = wait_for(lambda: scicat_server.dataset(f"{BT}/single"))
    assert doc["inputDatasets"] == [f"{BT}/solo_00001"]


def test_group_map_file(beamtime_factory, scicat_server, service_factory, tmp_path):
    f = beamtime_factory
    write_scans(f, "g_00001", "g_00002")
    group_map = tmp_path / "groupmap.lst"
    group_map.write_text(
        "scientificMetadata.title scientificMetadata.title.value\n"
        "scientificMetadata.distance scientificMetadata.instrument.detector.distance\n"
    )
    f.append_list(None, "__command__ start grp", "g_00001", "g_00002", "__command__ stop", "grp")
    service_factory(metadata_group_map_file=str(group_map))
    doc = wait_for(lambda: scicat_server.dataset(f"{BT}/grp"))
    metadata = doc["scientificMetadata"]
    assert "distance" in metadata and metadata["distance"]["counts"] == 2
    assert "title" in metadata


def test_restart_in_the_middle_of_a_measurement(beamtime_factory, scicat_server, service_factory):
    f = beamtime_factory
    write_scans(f, "r_00001", "r_00002")
    f.append_list(None, "__command__ start rst", "r_00001")
    first = service_factory()
    wait_for(lambda: scicat_server.dataset(f"{BT}/r_00001"))
    wait_for(lambda: first.status().current_measurements.get(f.scandir) == "rst")
    first.stop()
    f.append_list(None, "r_00002", "__command__ stop", "rst:1718000001.0")
    second = service_factory()
    doc = wait_for(lambda: scicat_server.dataset(f"{BT}/rst"))
    second.wait_idle()
    assert sorted(doc["inputDatasets"]) == [f"{BT}/r_00001", f"{BT}/r_00002"]
    assert "rst" in scicat_server.dataset(f"{BT}/r_00002")["keywords"]
    assert len(dataset_posts(scicat_server, f"{BT}/rst")) == 1
    assert scicat_server.dataset(f"{BT}/rst/2") is None


def test_scicat_failing_while_the_measurement_is_patched(
    beamtime_factory, scicat_server, service_factory
):
    f = beamtime_factory
    write_scans(f, "x_00001", "x_00002")
    f.append_list(None, "__command__ start flaky", "x_00001", "__command__ stop", "flaky")
    service = service_factory()
    wait_for(lambda: scicat_server.dataset(f"{BT}/flaky"))
    service.wait_idle()
    scicat_server.faults.fail_next(3, status=503, method="PATCH")
    f.append_list(None, "__command__ start flaky", "x_00002", "__command__ stop", "flaky:2.5")
    wait_for(lambda: len(scicat_server.dataset(f"{BT}/flaky")["inputDatasets"]) == 2, timeout=60)
    wait_for(lambda: len(scicat_server.datablocks(f"{BT}/flaky")) == 2, timeout=60)
    assert len(dataset_posts(scicat_server, f"{BT}/flaky")) == 1
    assert scicat_server.dataset(f"{BT}/flaky/2") is None


def test_bad_command_lines_are_reported_and_skipped(
    beamtime_factory, scicat_server, service_factory, caplog, tmp_path
):
    f = beamtime_factory
    write_scans(f, "ok_00001", "ok_00002")
    f.append_list(
        None, "__command__ start", "__command__ pause", "__command__ stop", "ok_00001", "ok_00002"
    )
    with caplog.at_level(logging.WARNING):
        service = service_factory()
        wait_for(lambda: scicat_server.dataset(f"{BT}/ok_00002"))
        service.wait_idle()
    # skipped: no measurement opened, the scans go in on their own, nothing failed
    assert [line.split(" ")[0] for line in f.read_ingested()] == ["ok_00001", "ok_00002"]
    assert [d["pid"] for d in scicat_server.datasets()] == [f"{BT}/ok_00001", f"{BT}/ok_00002"]
    status = service.status()
    assert status.failed_count == 0 and status.current_measurements == {}
    # one report per bad line, naming the list file and the line (README "Measurements")
    where = sorted(r.getMessage().split(": ")[0] for r in caplog.records
                   if r.levelno == logging.WARNING and f.list_path() in r.getMessage())
    assert where == [f"{f.list_path()}:{n}" for n in (2, 3, 4)]


def test_unparsable_group_map_file_is_reported_and_scans_still_go_in(
    beamtime_factory, scicat_server, service_factory, tmp_path, caplog
):
    f = beamtime_factory
    write_scans(f, "p_00001", "q_00001")
    bad_map = tmp_path / "bad-map.yaml"
    bad_map.write_text("{this is: [not valid yaml")
    f.append_list(None, "q_00001", "__command__ start pm", "p_00001", "__command__ stop", "pm")
    with caplog.at_level(logging.ERROR):
        service = service_factory(metadata_group_map_file=str(bad_map))
        wait_for(lambda: scicat_server.dataset(f"{BT}/p_00001"))
        service.wait_idle()
    assert scicat_server.dataset(f"{BT}/q_00001") is not None
    assert scicat_server.dataset(f"{BT}/pm") is None
    assert scicat_server.dataset(f"{BT}/p_00001") is not None
    assert service.status().failed_count == 0
    # the broken group map is reported, naming the file (README "Measurements")
    assert any(r.levelno >= logging.ERROR and str(bad_map) in r.getMessage()
               for r in caplog.records)


def test_an_empty_measurement_is_not_a_failure(beamtime_factory, scicat_server, service_factory):
    f = beamtime_factory
    write_scans(f, "after_00001")
    f.append_list(None, "__command__ start empty", "__command__ stop", "empty:1.5", "after_00001")
    service = service_factory()
    wait_for(lambda: scicat_server.dataset(f"{BT}/after_00001"))
    service.wait_idle()
    status = service.status()
    assert status.failed_count == 0 and status.queue_length == 0
    assert scicat_server.dataset(f"{BT}/empty") is None


def test_start_measurement_in_a_scan_dir_without_list_file(
    beamtime_factory, scicat_server, service_factory
):
    f = beamtime_factory
    service = service_factory()
    wait_for(lambda: f.scandir in service.watched_scandirs())
    assert not __import__("os").path.exists(f.list_path())
    service.start_measurement("fresh", f.scandir)
    wait_for(lambda: service.status().current_measurements.get(f.scandir) == "fresh")
