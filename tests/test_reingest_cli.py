"""``scicat_dataset_ingest`` (one pass) and ``scicat_ingest`` (any model), as processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from scingestor.testing.setup import wait_for, write_config

BT = "99001234"

# every test here runs against both SciCat API versions of the dev server
pytestmark = pytest.mark.usefixtures("api_version")
REINGEST = [sys.executable, "-m", "scingestor.cli.reingest"]
MODEL = [sys.executable, "-m", "scingestor.cli.model"]


def run(command, args, timeout=120):
    return subprocess.run(command + list(args), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def writes(server):
    return [r for r in server.requests if r.method in ("POST", "PATCH", "DELETE")
            and "login" not in r.path.lower()]


def make_beamtime(f, count=3):
    names = [f"scan_{index:05d}" for index in range(1, count + 1)]
    for name in names:
        f.write_nexus_scan(name, detector_files=1)
    f.append_list(None, "__command__ start ignored", *names, "__command__ stop")
    return names


def test_cold_then_warm_then_one_changed(beamtime_factory, scicat_server):
    f = beamtime_factory
    names = make_beamtime(f)
    cfg = write_config(f, scicat_server.url)
    cold = run(REINGEST, ["-c", cfg])
    assert cold.returncode == 0, cold.stderr
    assert cold.stdout == ""
    assert sorted(d["pid"] for d in scicat_server.datasets()) == [f"{BT}/{n}" for n in names]
    assert len(scicat_server.datablocks()) == 3
    assert [line.rsplit(" ", 3)[0] for line in f.read_ingested()] == names
    assert "3 ingested, 0 unchanged, 0 failed" in cold.stderr

    scicat_server.clear_requests()
    warm = run(REINGEST, ["-c", cfg])
    assert warm.returncode == 0
    assert scicat_server.requests == []
    assert "0 ingested, 3 unchanged, 0 failed" in warm.stderr

    # a changed core field in scan 2's metadata: patched (default strategy)
    path = os.path.join(f.scandir, "scan_00002.scan.json")
    doc = json.load(open(path))
    doc["owner"] = "Someone Else"
    ingested_mtime = os.stat(path).st_mtime
    with open(path, "w") as handle:
        json.dump(doc, handle)
    os.utime(path, (ingested_mtime + 10, ingested_mtime + 10))  # newer, on any clock
    # a new detector file for scan 3: its datablock is replaced
    f.write_detector_files("scan_00003", 2, detector="lambda")
    scicat_server.clear_requests()
    changed = run(REINGEST, ["-c", cfg])
    assert changed.returncode == 0, changed.stderr
    patches = scicat_server.requests_matching("PATCH", r"/Datasets/")
    assert [r.path.split("%2F")[-1] for r in patches] == ["scan_00002"]
    assert scicat_server.dataset(f"{BT}/scan_00002")["owner"] == "Someone Else"
    blocks = scicat_server.datablocks(f"{BT}/scan_00003")
    assert len(blocks) == 1
    assert any("lambda" in item["path"] for item in blocks[0]["dataFileList"])
    assert not scicat_server.requests_matching("POST", r"/Datasets$")
    assert len(scicat_server.datablocks()) == 3


def test_dry_run_posts_nothing(beamtime_factory, scicat_server):
    f = beamtime_factory
    make_beamtime(f, 2)
    cfg = write_config(f, scicat_server.url)
    result = run(REINGEST, ["-c", cfg, "--dry-run"])
    assert result.returncode == 0, result.stderr
    assert writes(scicat_server) == []
    assert f.read_ingested() == []
    assert "would re-ingest scan_00001" in result.stderr


def test_failures_are_reported_and_others_go_in(beamtime_factory, scicat_server):
    f = beamtime_factory
    make_beamtime(f, 3)
    # scan 2 carries a field SciCat rejects: 400, no retry, reported, others continue
    with open(os.path.join(f.scandir, "scan_00002.scan.json"), "w") as handle:
        json.dump({"pid": f"{BT}/scan_00002", "type": "raw", "bogus": True,
                   "proposalId": f"11112222.{BT}"}, handle)
    cfg = write_config(f, scicat_server.url)
    scicat_server.faults.fail_next(2, status=503)
    result = run(REINGEST, ["-c", cfg])
    assert result.returncode == 1
    assert "bogus" in result.stderr and "scan_00002" in result.stderr
    assert sorted(d["pid"] for d in scicat_server.datasets()) == [
        f"{BT}/scan_00001", f"{BT}/scan_00003"]
    bad = [r for r in scicat_server.requests_matching("POST", r"/Datasets$")
           if "bogus" in r.body]
    assert len(bad) == 1


def test_broken_beamtime_does_not_stop_the_others(beamtime_factory, scicat_server, tmp_path):
    f = beamtime_factory
    make_beamtime(f, 1)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "beamtime-metadata-1.json").write_text("{not json")
    cfg = write_config(f, scicat_server.url,
                       beamtime_dirs=[str(broken), f.beamtime_dir])
    result = run(REINGEST, ["-c", cfg])
    assert result.returncode == 1
    assert "beamtime-metadata-1.json" in result.stderr
    assert scicat_server.dataset(f"{BT}/scan_00001") is not None


def test_runs_safely_beside_the_daemon(beamtime_factory, scicat_server):
    f = beamtime_factory
    names = make_beamtime(f, 6)
    cfg = write_config(f, scicat_server.url)
    daemon = subprocess.Popen(
        [sys.executable, "-m", "scingestor.cli.daemon", "-c", cfg],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        result = run(REINGEST, ["-c", cfg])
        assert result.returncode == 0, result.stderr
        wait_for(lambda: len(f.read_ingested()) >= 6)
    finally:
        daemon.terminate()
        daemon.wait(20)
    posts = scicat_server.requests_matching("POST", r"/Datasets$")
    assert sorted(json.loads(r.body)["pid"] for r in posts if r.status < 300) == [
        f"{BT}/{n}" for n in names]
    assert len(scicat_server.datablocks()) == 6


def test_model_ingestion(scicat_server, tmp_path, beamtime_factory):
    cfg = write_config(beamtime_factory, scicat_server.url)
    sample = tmp_path / "sample.json"
    sample.write_text(json.dumps({"sampleId": "H2O/42", "owner": "Lead",
                                  "ownerGroup": f"{BT}-dmgt", "description": "water"}))
    instrument = tmp_path / "instrument.json"
    instrument.write_text(json.dumps({"uniqueName": "P00", "name": "P00 beamline"}))
    ok = run(MODEL, ["-m", "Samples", "-c", cfg, str(sample)])
    assert ok.returncode == 0, ok.stderr
    assert [s["sampleId"] for s in scicat_server.samples()] == ["H2O/42"]
    ok = run(MODEL, ["-m", "Instruments", "-c", cfg, str(instrument)])
    assert ok.returncode == 0, ok.stderr
    assert len(scicat_server.instruments()) == 1
    post = scicat_server.requests_matching("POST", r"/Instruments$")[0]
    assert post.body == instrument.read_text()


def test_model_ingestion_errors(scicat_server, tmp_path, beamtime_factory):
    cfg = write_config(beamtime_factory, scicat_server.url)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{oops")
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"sampleId": "s2", "ownerGroup": "g"}))
    duplicate = tmp_path / "duplicate.json"
    duplicate.write_text(good.read_text())
    result = run(MODEL, ["-m", "Samples", "-c", cfg, str(bad_json), str(tmp_path / "nope.json"),
                         str(good), str(duplicate)])
    assert result.returncode == 1
    assert "bad.json: not valid JSON" in result.stderr
    assert "nope.json: cannot be read" in result.stderr
    assert "duplicate.json" in result.stderr and "409" in result.stderr
    assert [s["sampleId"] for s in scicat_server.samples()] == ["s2"]
    unknown = run(MODEL, ["-m", "Unicorns", "-c", cfg, str(good)])
    assert unknown.returncode == 1
    assert "good.json" in unknown.stderr and "404" in unknown.stderr


def test_model_without_model_option(tmp_path):
    result = run(MODEL, [str(tmp_path / "x.json")])
    assert result.returncode == 255
    assert result.stderr == "Error: SciCat model not define. Use the -m or --model option\n"
    assert result.stdout == "\n"


def test_model_with_token_file_makes_no_login(scicat_server, tmp_path, beamtime_factory):
    import requests

    answer = requests.post(scicat_server.login_url + "/auth/login",
                           json={"username": "ingestor", "password": "12342345"}, timeout=10)
    token_file = tmp_path / "token"
    token_file.write_text(answer.json()["access_token"] + "\n")
    cfg = write_config(beamtime_factory, scicat_server.url, ingestor_credential_file=None)
    sample = tmp_path / "sample.json"
    sample.write_text(json.dumps({"sampleId": "s9", "ownerGroup": "g"}))
    scicat_server.clear_requests()
    result = run(MODEL, ["-m", "Samples", "-c", cfg, "-p", str(token_file), str(sample)])
    assert result.returncode == 0, result.stderr
    assert [r.path for r in scicat_server.requests] == ["/api/v3/Samples"]


def test_base_dir_beamtimes_and_no_lists_below_a_blacklisted_directory(
        beamtime_factory, scicat_server):
    f = beamtime_factory
    f.write_nexus_scan("scan_00001")
    f.append_list(None, "scan_00001")
    processed = f.make_scandir("processed/run1")
    f.write_nexus_scan("proc_00001", scandir=processed)
    f.append_list(processed, "proc_00001")
    cfg = write_config(f, scicat_server.url, beamtime_dirs=[], beamtime_base_dir=f.root,
                       scandir_blacklist=[os.path.join(f.beamtime_dir, "processed")])
    result = run(REINGEST, ["-c", cfg])
    assert result.returncode == 0, result.stderr
    assert [d["pid"] for d in scicat_server.datasets()] == [f"{BT}/scan_00001"]
    assert not os.path.exists(f.ingested_path(processed))
