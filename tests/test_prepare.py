"""The metadata stage on its own: one entry → one PreparedScan (README "What we changed")."""

from __future__ import annotations

import json
import os
import time

from scingestor.beamtime import load_beamtime, scandir_context
from scingestor.config import config_from_mapping
from scingestor.listproto import parse_entry
from scingestor.metadata import MeasurementState, MetadataGenerator
from scingestor.prepare import ScanPreparer
from scingestor.runner import GeneratorRunner


def preparer_for(f):
    cfg = config_from_mapping({"beamtime_dirs": [f.beamtime_dir]})
    ctx = scandir_context(cfg, load_beamtime(f.metadata_path), f.scandir)
    return ScanPreparer(cfg, MetadataGenerator(cfg, GeneratorRunner(cfg))), ctx


def prepare(preparer, ctx, line="scan_00001", **options):
    return preparer.prepare(ctx, parse_entry(line), MeasurementState(), set(), **options)


def set_mtime(path, seconds_ago):
    stamp = time.time() - seconds_ago
    os.utime(path, (stamp, stamp))


def test_missing_files_are_made_and_read_once(beamtime_factory):
    f = beamtime_factory
    f.write_nexus_scan("scan_00001", png=True, detector_files=2)
    preparer, ctx = preparer_for(f)
    prepared = prepare(preparer, ctx)
    assert prepared.dataset_changed and prepared.datablock.changed
    assert prepared.attachment.changed
    assert prepared.pid == f"{f.beamtime_id}/scan_00001"
    assert prepared.dataset_mtime == os.stat(prepared.paths.dataset).st_mtime
    (block,) = prepared.datablock.documents
    assert len(block["dataFileList"]) == 4  # master, png, two detector files
    assert len(prepared.attachment.documents) == 1
    # the value does not follow the files afterwards: it is what was read
    os.unlink(prepared.paths.datablock)
    assert prepared.datablock.exists and prepared.datablock.documents == (block,)
    again = prepare(preparer, ctx)
    assert not again.dataset_changed and again.datablock.changed  # only the missing one


def test_a_dataset_file_older_than_its_master_is_made_again(beamtime_factory):
    f = beamtime_factory
    f.write_nexus_scan("scan_00001")
    preparer, ctx = preparer_for(f)
    first = prepare(preparer, ctx)
    set_mtime(first.paths.dataset, 120)
    f.write_nexus_scan("scan_00001", title="rewritten scan")
    second = prepare(preparer, ctx)
    assert second.dataset_changed
    assert "rewritten scan" in json.dumps(second.dataset)


def test_a_dataset_file_edited_after_its_master_is_kept(beamtime_factory):
    f = beamtime_factory
    master = f.write_nexus_scan("scan_00001")
    preparer, ctx = preparer_for(f)
    first = prepare(preparer, ctx)
    set_mtime(master, 120)
    edited = dict(first.dataset, description="by hand")
    with open(first.paths.dataset, "w", encoding="utf-8") as handle:
        json.dump(edited, handle)
    second = prepare(preparer, ctx)
    assert not second.dataset_changed and second.dataset["description"] == "by hand"


def test_reingestion_refreshes_the_datablock_from_the_data_files(beamtime_factory):
    f = beamtime_factory
    f.write_nexus_scan("scan_00001", detector_files=1)
    preparer, ctx = preparer_for(f)
    prepare(preparer, ctx)
    f.write_detector_files("scan_00001", 3)
    plain = prepare(preparer, ctx)
    assert not plain.datablock.changed  # a plain line keeps the file it has
    refreshed = prepare(preparer, ctx, refresh_datablock=True)
    assert refreshed.datablock.changed
    (block,) = refreshed.datablock.documents
    assert len(block["dataFileList"]) == 4
    assert not prepare(preparer, ctx, refresh_datablock=True).datablock.changed


def test_unusable_files_are_reported_not_raised(beamtime_factory):
    f = beamtime_factory
    f.write_nexus_scan("scan_00001", png=True)
    preparer, ctx = preparer_for(f)
    first = prepare(preparer, ctx)
    with open(first.paths.attachment, "w", encoding="utf-8") as handle:
        handle.write("{not json")
    with open(first.paths.dataset, "w", encoding="utf-8") as handle:
        handle.write("[1, 2]")
    set_mtime(first.paths.dataset, -60)  # newer than the master: kept as it is
    second = prepare(preparer, ctx)
    assert second.dataset is None and "not a JSON object" in second.dataset_error
    assert second.attachment.exists and second.attachment.error
    assert second.datablock.documents and not second.datablock.error


def test_files_torn_by_a_killed_generator_are_set_aside_and_made_again(beamtime_factory):
    f = beamtime_factory
    f.write_nexus_scan("scan_00001", png=True)
    preparer, ctx = preparer_for(f)
    good = prepare(preparer, ctx)
    with open(good.paths.dataset, encoding="utf-8") as handle:
        dataset_text = handle.read()
    # what a kill -9 in the middle of the generators leaves: cut off, and empty
    with open(good.paths.dataset, "w", encoding="utf-8") as handle:
        handle.write(dataset_text[: len(dataset_text) // 2])
    open(good.paths.attachment, "w").close()
    kept = prepare(preparer, ctx)  # a recorded line: nothing is touched
    assert kept.dataset_error and kept.attachment.error
    again = prepare(preparer, ctx, salvage=True)  # never recorded: ours were in flight
    assert again.dataset == good.dataset and not again.dataset_error
    assert again.attachment.documents == good.attachment.documents
    with open(good.paths.dataset + ".broken-1", encoding="utf-8") as handle:
        assert handle.read() == dataset_text[: len(dataset_text) // 2]
    assert os.path.getsize(good.paths.attachment + ".broken-1") == 0
    assert not os.path.exists(good.paths.datablock + ".broken-1")  # it was fine
