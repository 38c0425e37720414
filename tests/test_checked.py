"""Datablocks known to match their data files (scingestor/checked.py).

README "Re-ingestion at the end of a beamtime", docs/architecture.md
"Re-ingestion without work": the stream generator runs again only when its
command or the files it names changed, or the datablock file itself did.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any, List

import pytest

from scingestor.beamtime import load_beamtime, scandir_context
from scingestor.checked import CheckedDatablocks, checked_path, fingerprint
from scingestor.config import config_from_mapping
from scingestor.generators import Command
from scingestor.listproto import parse_entry
from scingestor.metadata import MeasurementState, MetadataGenerator
from scingestor.prepare import ScanPreparer
from scingestor.runner import GeneratorRunner
from scingestor.testing.setup import wait_for, write_config

BT = "99001234"
REINGEST = [sys.executable, "-m", "scingestor.cli.reingest"]


class CountingRunner(GeneratorRunner):
    """The real runner, counting the commands it runs by template key."""

    def __init__(self, cfg: Any) -> None:
        super().__init__(cfg)
        self.keys: List[str] = []

    def run(self, command: Command, capture: bool = False) -> str:
        self.keys.append(command.key)
        return super().run(command, capture=capture)


def test_the_fingerprint_follows_the_words_and_every_file(tmp_path):
    scan = tmp_path / "scan_00001"
    scan.mkdir()
    (scan / "a.cbf").write_bytes(b"1234")
    argv = ["nxsfileinfo", "origdatablock", "-p", "x/scan_00001", str(scan),
            str(tmp_path / "scan_00001.nxs")]
    first = fingerprint(argv)
    assert fingerprint(argv) == first
    assert fingerprint(argv[:3] + ["y/scan_00001"] + argv[4:]) != first  # a word
    (tmp_path / "scan_00001.nxs").write_bytes(b"")  # a named file that appeared
    second = fingerprint(argv)
    assert second != first
    (scan / "b.cbf").write_bytes(b"5")  # a new file below a named directory
    third = fingerprint(argv)
    assert third != second
    (scan / "b.cbf").write_bytes(b"56")  # resized
    fourth = fingerprint(argv)
    assert fourth != third
    os.utime(scan / "a.cbf", ns=(1, 1))  # touched
    assert fingerprint(argv) != fourth


def test_a_matching_datablock_is_not_generated_again(beamtime_factory, tmp_path):
    f = beamtime_factory
    f.write_nexus_scan("scan_00001", detector_files=2)
    cfg = config_from_mapping({"beamtime_dirs": [f.beamtime_dir],
                               "scicat_url": "http://127.0.0.1:9/api/v3"})
    runner = CountingRunner(cfg)
    preparer = ScanPreparer(cfg, MetadataGenerator(cfg, runner))
    ctx = scandir_context(cfg, load_beamtime(f.metadata_path), f.scandir)
    entry = parse_entry("scan_00001", 1)

    def prepare(checked: Any = None) -> Any:
        runner.keys.clear()
        prepared = preparer.prepare(ctx, entry, MeasurementState(), frozenset(),
                                    refresh_datablock=True, checked=checked)
        # only the stream generator matters here (no plot: the attachment is tried again)
        runner.keys[:] = [key for key in runner.keys if "datablock" in key]
        return prepared

    prepare()  # makes the three files
    compared = prepare()
    assert runner.keys == ["datablock_metadata_stream_generator"]
    assert not compared.datablock.changed and compared.datablock_check is not None
    again = prepare(compared.datablock_check)
    assert runner.keys == []  # nothing changed: no generator run
    assert again.datablock_check == compared.datablock_check
    assert again.datablock.documents == compared.datablock.documents
    # a new data file: compared again, the datablock file rewritten
    f.write_detector_files("scan_00001", 1, detector="lambda")
    changed = prepare(compared.datablock_check)
    assert runner.keys == ["datablock_metadata_stream_generator"]
    assert changed.datablock.changed
    assert any("lambda" in item["path"] for item in changed.datablock.documents[0]
               ["dataFileList"])
    # the datablock file edited afterwards: its stamp differs, compared again
    path = changed.paths.datablock
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 10**9))
    prepare(changed.datablock_check)
    assert runner.keys == ["datablock_metadata_stream_generator"]


def test_a_program_generator_is_never_skipped(beamtime_factory, venv_path):
    f = beamtime_factory
    f.write_nexus_scan("scan_00002", detector_files=1)
    cfg = config_from_mapping({"beamtime_dirs": [f.beamtime_dir],
                               "scicat_url": "http://127.0.0.1:9/api/v3"})
    preparer = ScanPreparer(cfg, MetadataGenerator(cfg, GeneratorRunner(cfg, in_process=False)))
    ctx = scandir_context(cfg, load_beamtime(f.metadata_path), f.scandir)
    entry = parse_entry("scan_00002", 1)
    preparer.prepare(ctx, entry, MeasurementState(), frozenset())
    compared = preparer.prepare(ctx, entry, MeasurementState(), frozenset(),
                                refresh_datablock=True)
    assert compared.datablock_check is None  # another program may read more than its words


@pytest.mark.usefixtures("api_version")
def test_the_tool_keeps_the_checks_and_still_sees_a_change(beamtime_factory, scicat_server):
    f = beamtime_factory
    names = [f"scan_{index:05d}" for index in range(1, 4)]
    for name in names:
        f.write_nexus_scan(name, detector_files=1)
    f.append_list(None, *names)
    cfg = write_config(f, scicat_server.url)

    def run() -> Any:
        result = subprocess.run(REINGEST + ["-c", cfg], capture_output=True, text=True,
                                timeout=120, stdin=subprocess.DEVNULL)
        assert result.returncode == 0, result.stderr
        return result

    run()  # cold: everything made and sent, the datablocks' checks kept
    cache = checked_path(f.ingested_path())
    kept = CheckedDatablocks(f.ingested_path())
    assert all(kept.get(name) for name in names)
    with open(cache, encoding="utf-8") as handle:  # compacted: one line per scan
        assert sorted(json.loads(line)[0] for line in handle) == names
    scicat_server.clear_requests()
    assert "0 ingested, 3 unchanged" in run().stderr
    assert scicat_server.requests == []
    f.write_detector_files("scan_00002", 1, detector="lambda")
    scicat_server.clear_requests()
    assert "1 ingested, 2 unchanged" in run().stderr
    (block,) = scicat_server.datablocks(f"{BT}/scan_00002")
    assert any("lambda" in item["path"] for item in block["dataFileList"])
    # a damaged cache is ignored: everything is compared again, nothing changes
    with open(cache, "w") as handle:
        handle.write("{not json\n[1, 2]\n")
    scicat_server.clear_requests()
    assert "0 ingested, 3 unchanged" in run().stderr
    assert scicat_server.requests == []
    kept = CheckedDatablocks(f.ingested_path())
    assert all(kept.get(name) for name in names)


@pytest.mark.usefixtures("api_version")
def test_the_daemon_keeps_checks_the_tool_trusts(beamtime_factory, scicat_server,
                                                 service_factory):
    f = beamtime_factory
    names = ["scan_00001", "scan_00002"]
    for name in names:
        f.write_nexus_scan(name, detector_files=1)
    f.append_list(None, *names)
    service = service_factory()
    wait_for(lambda: len(f.read_ingested()) == 2)
    service.stop()
    kept = CheckedDatablocks(f.ingested_path())
    assert all(kept.get(name) for name in names)
    # the end-of-beamtime pass: nothing changed, nothing sent; then a change is seen
    cfg = write_config(f, scicat_server.url)
    scicat_server.clear_requests()
    result = subprocess.run(REINGEST + ["-c", cfg], capture_output=True, text=True,
                            timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 0 and "0 ingested, 2 unchanged" in result.stderr
    assert scicat_server.requests == []
