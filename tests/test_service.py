"""End to end through the core service: real files, real inotify, the real dev server."""

from __future__ import annotations

import os

import pytest

from scingestor.service import ServiceError
from scingestor.status import State
from scingestor.testing.setup import wait_for

BT = "99001234"

# every test here runs against both SciCat API versions of the dev server
pytestmark = pytest.mark.usefixtures("api_version")


def posted(server, method="POST", path=r"/Datasets$"):
    return [r for r in server.requests_matching(method, path) if 200 <= r.status < 300]


def dataset_pids(server):
    return sorted(doc["pid"] for doc in server.datasets())


def test_existing_list_is_ingested_at_start(beamtime_factory, scicat_server, service_factory):
    f = beamtime_factory
    f.write_nexus_scan("scan_00001", png=True, detector_files=2)
    f.write_fio_scan("scan_00002")
    f.append_list(None, "scan_00001", "scan_00002")
    service = service_factory(start=False)
    service.start()
    wait_for(lambda: len(f.read_ingested()) == 2)
    assert dataset_pids(scicat_server) == [f"{BT}/scan_00001", f"{BT}/scan_00002"]
    blocks = scicat_server.datablocks(f"{BT}/scan_00001")
    assert len(blocks) == 1
    paths = sorted(item["path"] for item in blocks[0]["dataFileList"])
    assert "scan_00001.nxs" in paths and "scan_00001.png" in paths
    assert any(path.startswith("scan_00001/pilatus_") for path in paths)
    assert len(scicat_server.attachments(f"{BT}/scan_00001")) == 1
    doc = scicat_server.dataset(f"{BT}/scan_00001")
    assert doc["type"] == "raw" and doc["ownerGroup"] == f"{BT}-dmgt"
    assert doc["proposalId"] == f"11112222.{BT}"
    for line in f.read_ingested():
        key, t_ds, t_db, _ = line.rsplit(" ", 3)
        assert float(t_ds) > 0 and float(t_db) > 0
    wait_for(lambda: service.status().state is State.ON)
    status = service.status()
    assert status.ingested_count == 2 and status.failed_count == 0
    assert status.last_ingested_scan == "scan_00002"
    assert status.scicat_reachable


def test_appended_scans_are_ingested_and_status_events_arrive(
    beamtime_factory, scicat_server, service_factory
):
    f = beamtime_factory
    open(f.list_path(), "a").close()  # an empty list file
    service = service_factory(start=False)
    events = []
    service.subscribe(events.append)
    service.start()
    f.write_nexus_scan("scan_00003")
    f.append_list(None, "scan_00003")
    wait_for(lambda: f"{BT}/scan_00003" in dataset_pids(scicat_server))
    wait_for(lambda: service.status().ingested_count == 1)
    assert any(event.last_ingested_scan == "scan_00003" for event in events)
    assert any(event.state is State.ON for event in events)


def test_restart_ingests_what_was_appended_while_stopped_and_nothing_twice(
    beamtime_factory, scicat_server, service_factory
):
    f = beamtime_factory
    for name in ("s_00001", "s_00002"):
        f.write_nexus_scan(name)
    f.append_list(None, "s_00001")
    first = service_factory(start=False)
    first.start()
    wait_for(lambda: len(f.read_ingested()) == 1)
    first.stop()
    f.append_list(None, "s_00002")
    second = service_factory(start=False)
    second.start()
    wait_for(lambda: len(f.read_ingested()) == 2)
    assert len(posted(scicat_server)) == 2
    assert len(scicat_server.datablocks()) == 2


@pytest.mark.parametrize("status", [500, 503])
def test_scicat_unavailable_then_back(beamtime_factory, scicat_server, service_factory, status):
    f = beamtime_factory
    for index in range(1, 4):
        f.write_nexus_scan(f"s_{index:05d}")
    scicat_server.faults.fail_next(12, status=status)
    f.append_list(None, "s_00001", "s_00002", "s_00003")
    service = service_factory(start=False)
    service.start()
    wait_for(lambda: len(dataset_pids(scicat_server)) == 3, timeout=60)
    wait_for(lambda: service.status().state is State.ON, timeout=30)
    assert len(posted(scicat_server)) == 3
    assert len(scicat_server.datablocks()) == 3


def test_connection_refused_then_back(beamtime_factory, scicat_server, service_factory):
    f = beamtime_factory
    f.write_nexus_scan("s_00001")
    f.write_nexus_scan("s_00002")
    scicat_server.faults.refuse_connections(3.0)
    f.append_list(None, "s_00001", "s_00002")
    service = service_factory(start=False)
    service.start()
    wait_for(lambda: service.status().state is State.ALARM, timeout=20)
    assert service.status().last_error
    wait_for(lambda: len(dataset_pids(scicat_server)) == 2, timeout=60)
    wait_for(lambda: service.status().state is State.ON, timeout=30)
    assert len(posted(scicat_server)) == 2


def test_validation_error_fails_one_scan_others_continue(
    beamtime_factory, scicat_server, service_factory
):
    f = beamtime_factory
    f.write_nexus_scan("good_00001")
    f.write_nexus_scan("bad_00002")
    os.makedirs(f.scandir, exist_ok=True)
    # a hand-made dataset file with a field SciCat does not know
    with open(os.path.join(f.scandir, "bad_00002.scan.json"), "w") as handle:
        handle.write(
            f'{{"pid": "{BT}/bad_00002", "type": "raw", "bogus": 1, "owner": "x",'
            ' "ownerGroup": "g", "contactEmail": "a@b.c", "sourceFolder": "/x",'
            ' "creationTime": "2024-03-05T10:00:00+01:00", "principalInvestigator": "a@b.c",'
            f' "creationLocation": "/DESY", "proposalId": "11112222.{BT}"}}'
        )
    f.append_list(None, "bad_00002", "good_00001")
    service = service_factory(start=False)
    service.start()
    wait_for(lambda: f"{BT}/good_00001" in dataset_pids(scicat_server))
    wait_for(lambda: service.status().failed_count >= 1)
    # both recorded (the good scan's record follows its datablock and thumbnail)
    wait_for(lambda: len(f.read_ingested()) == 2)
    status = service.status()
    assert "bogus" in status.last_error
    assert status.state is State.ALARM
    assert f"{BT}/bad_00002" not in dataset_pids(scicat_server)
    records = {line.split(" ")[0]: line.split(" ")[1:] for line in f.read_ingested()}
    assert records["bad_00002"] == ["-1", "0", "0"]
    assert float(records["good_00001"][0]) > 0
    bad_posts = [
        r for r in scicat_server.requests_matching("POST", r"/Datasets$") if "bad_00002" in r.body
    ]
    assert bad_posts and all(r.status == 400 for r in bad_posts)


def test_shell_injection_in_list_runs_nothing(
    beamtime_factory, scicat_server, service_factory, tmp_path
):
    f = beamtime_factory
    marker = tmp_path / "pwned"
    f.append_list(
        None,
        f"s1;touch${{IFS}}{marker}",
        f"s2$(touch {marker})",
        f"s3`touch {marker}`",
        "../../escape_00001",
        "/etc/passwd",
    )
    f.write_nexus_scan("ok_00001")
    f.append_list(None, "ok_00001")
    service = service_factory(start=False)
    service.start()
    wait_for(lambda: f"{BT}/ok_00001" in dataset_pids(scicat_server))
    service.wait_idle()
    assert not marker.exists()
    for _root, _dirs, files in os.walk(str(tmp_path)):
        for name in files:
            assert "escape" not in name and name != "passwd.scan.json"
    assert not os.path.exists(
        os.path.join(os.path.dirname(f.beamtime_dir), "escape_00001.scan.json")
    )


def test_polling_only_mode(beamtime_factory, scicat_server, service_factory):
    f = beamtime_factory
    service = service_factory(
        start=False,
        poll_only=True,
        recheck_dataset_list_interval=0.3,
        recheck_beamtime_file_interval=0.3,
    )
    service.start()
    f.write_nexus_scan("p_00001")
    f.append_list(None, "p_00001")
    wait_for(lambda: f"{BT}/p_00001" in dataset_pids(scicat_server))
    assert service.status().watch_mode == "polling"


def test_measurement_commands_append_records(beamtime_factory, scicat_server, service_factory):
    f = beamtime_factory
    f.write_nexus_scan("m_00001")
    f.append_list(None, "m_00001")
    service = service_factory(start=False)
    service.start()
    wait_for(lambda: len(f.read_ingested()) == 1)
    assert service.start_measurement("calib", f.scandir) == f.scandir
    wait_for(lambda: service.status().current_measurements.get(f.scandir) == "calib")
    with pytest.raises(ServiceError):
        service.start_measurement("bad name")
    with pytest.raises(ServiceError):
        service.start_measurement("x", "/not/watched")
    assert service.stop_measurement(f.scandir) == "calib"
    lines = [line for line in open(f.list_path()).read().split("\n") if line]
    assert lines[1] == "__command__ start calib"
    assert lines[2] == "__command__ stop"
    assert lines[3].startswith("calib:")
    wait_for(lambda: "calib" not in service.status().current_measurements.values())


def test_stop_is_prompt_and_threads_are_fixed(beamtime_factory, scicat_server, service_factory):
    import threading

    f = beamtime_factory
    for index in range(30):
        os.makedirs(os.path.join(f.beamtime_dir, f"dir{index}", "sub"), exist_ok=True)
    before = threading.active_count()
    service = service_factory(start=False)
    service.start()
    during = threading.active_count()
    assert during - before <= 3
    service.stop()
    assert not service.running
    assert service.status().state is State.OFF
