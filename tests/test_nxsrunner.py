"""Running generators: in-process nxsfileinfo equals the program, failures, temporary copies."""

from __future__ import annotations

import logging
import os
import shutil
import threading
from typing import Any, Callable

import pytest

from scingestor.beamtime import load_beamtime, scandir_context
from scingestor.config import config_from_mapping
from scingestor.generators import (
    ATTACHMENT,
    CALLBACK,
    DATABLOCK,
    DATABLOCK_STREAM,
    DATASET,
    FILE_DATASET,
    Command,
    GeneratorError,
    build_command,
    expand_segments,
    keyword_table,
)
from scingestor.nxsrunner import NxsFileInfo
from scingestor.runner import GeneratorRunner, temporary_master_copy

logger = logging.getLogger(__name__)


def _tree(root: str) -> dict[str, bytes]:
    files = {}
    for directory, _dirs, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            with open(path, "rb") as handle:
                files[os.path.relpath(path, root)] = handle.read()
    return files


def _both_ways(run: Callable[[GeneratorRunner], dict[str, Any]], cfg: Any,
               outdir: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the same generators in-process and as programs into the same (emptied) dir."""
    results = []
    for in_process in (True, False):
        shutil.rmtree(outdir, ignore_errors=True)
        captured = run(GeneratorRunner(cfg, in_process=in_process))
        captured["files"] = _tree(outdir)
        results.append(captured)
    return results[0], results[1]


def test_in_process_output_is_byte_identical(beamtime_factory: Any, tmp_path: Any,
                                             venv_path: None) -> None:
    factory = beamtime_factory
    nexus = factory.write_nexus_scan("scan_00001", png=True, detector_files=2)
    png = os.path.join(factory.scandir, "scan_00001.png")
    fio = factory.write_fio_scan("fscan_00002", detector_files=1)
    outdir = str(tmp_path / "var")
    cfg = config_from_mapping({"ingestor_var_dir": outdir, "chmod_json_files": "0o640",
                               "log_generator_commands": True})
    ctx = scandir_context(cfg, load_beamtime(factory.metadata_path), factory.scandir)
    scans = [
        ("scan_00001", nexus, "nxs", png, "png", ["scan_00001", "../raw/scan_00001"]),
        ("scan_00001n", nexus, "nxs", nexus, "nxs", ["scan_00001"]),
        ("fscan_00002", fio, "fio", fio, "fio", ["fscan_00002"]),
    ]

    def run(runner: GeneratorRunner) -> dict[str, Any]:
        streams = []
        for scan, master, ext, plot, plotext, tokens in scans:
            kw = keyword_table(cfg, ctx, scanname=scan, masterfile=master, ext=ext,
                               plotfile=plot, plotext=plotext, measurement="mycalib",
                               lastmeasurement="mycalib")
            for key in (FILE_DATASET, DATABLOCK, ATTACHMENT):
                assert runner.run(build_command(cfg, key, kw, tokens)) == ""
            streams.append(runner.run(build_command(cfg, DATABLOCK_STREAM, kw, tokens),
                                      capture=True))
        kw = keyword_table(cfg, ctx, scanname="scan_00001", lastmeasurement="mycalib")
        runner.run(build_command(cfg, CALLBACK, kw))
        runner.run(build_command(cfg, DATASET, keyword_table(cfg, ctx, scanname="noscan")))
        return {"streams": streams}

    inproc, program = _both_ways(run, cfg, outdir)
    assert inproc == program
    metapath = os.path.relpath(ctx.metapath, outdir)
    names = {os.path.basename(path) for path in inproc["files"]}
    for expected in ("scan_00001.scan.json", "scan_00001.origdatablock.json",
                     "scan_00001.attachment.json", "fscan_00002.scan.json",
                     "fscan_00002.origdatablock.json", "mycalib.scan.json",
                     "mycalib.origdatablock.json", "noscan.scan.json"):
        assert expected in names
        assert os.path.join(metapath, expected) in inproc["files"]
    assert b"data:image/png;base64," in inproc["files"][
        os.path.join(metapath, "scan_00001.attachment.json")]
    for stream in inproc["streams"]:
        assert stream.startswith("{") and stream.endswith("}\n")
    assert '"path": "scan_00001/pilatus_00000.cbf"' in inproc["streams"][0]


def test_stdout_of_a_printing_command_is_identical(beamtime_factory: Any,
                                                   venv_path: None) -> None:
    nexus = beamtime_factory.write_nexus_scan("scan_00003")
    cfg = config_from_mapping({})
    for args in (["metadata", "-k4", nexus], ["general", nexus], ["field", nexus]):
        command = Command("test", " ".join(args), ("nxsfileinfo", *args))
        inproc = GeneratorRunner(cfg).run(command, capture=True)
        program = GeneratorRunner(cfg, in_process=False).run(command, capture=True)
        assert inproc == program
        assert inproc.endswith("\n") and len(inproc) > 10


def test_in_process_runs_are_serialised_and_correct(beamtime_factory: Any) -> None:
    factory = beamtime_factory
    for index in range(4):
        factory.write_nexus_scan(f"scan_{index:05d}", detector_files=1)
    cfg = config_from_mapping({})
    ctx = scandir_context(cfg, load_beamtime(factory.metadata_path), factory.scandir)
    runner = GeneratorRunner(cfg)
    commands = [build_command(cfg, DATABLOCK_STREAM,
                              keyword_table(cfg, ctx, scanname=f"scan_{index:05d}"))
                for index in range(4)]
    serial = [runner.run(command, capture=True) for command in commands]
    results: dict[int, str] = {}

    def work(index: int) -> None:
        for _ in range(3):
            results[index] = runner.run(commands[index], capture=True)

    threads = [threading.Thread(target=work, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [results[index] for index in range(4)] == serial
    assert len(set(serial)) == 4


@pytest.mark.parametrize("in_process", [True, False], ids=["in-process", "program"])
def test_missing_master_file_fails(tmp_path: Any, venv_path: None, in_process: bool) -> None:
    cfg = config_from_mapping({})
    missing = str(tmp_path / "missing.nxs")
    command = Command(FILE_DATASET, "", ("nxsfileinfo", "metadata", "-o",
                                         str(tmp_path / "x.json"), missing))
    with pytest.raises(GeneratorError) as info:
        GeneratorRunner(cfg, in_process=in_process).run(command)
    message = str(info.value)
    assert "exit status 255" in message
    assert f"nxsfileinfo: File '{missing}' cannot be opened" in message
    assert "\n" not in message
    assert not os.path.exists(tmp_path / "x.json")


@pytest.mark.parametrize("in_process", [True, False], ids=["in-process", "program"])
def test_bad_option_fails(venv_path: None, in_process: bool) -> None:
    command = Command(DATASET, "", ("nxsfileinfo", "metadata", "--no-such-option"))
    with pytest.raises(GeneratorError, match="exit status 255: Error: unrecognized arguments"):
        GeneratorRunner(config_from_mapping({}), in_process=in_process).run(command)


def test_in_process_status_matches_program_for_no_subcommand(venv_path: None) -> None:
    inproc = NxsFileInfo().run([])
    assert inproc.status == 255
    assert inproc.stderr == "Error: too few arguments\n"
    assert inproc.stdout.startswith("usage: nxsfileinfo")


def test_false_command_fails_with_status() -> None:
    cfg = config_from_mapping({"metadata_generated_callback": "false"})
    with pytest.raises(GeneratorError, match="metadata_generated_callback failed with exit "
                                             "status 1"):
        GeneratorRunner(cfg).run(build_command(cfg, CALLBACK, {}))


def test_stderr_last_line_is_reported() -> None:
    command = expand_segments(CALLBACK, [("sh -c 'echo first >&2; echo {msg} >&2; exit 3'",
                                          {"msg": "the reason"})])
    with pytest.raises(GeneratorError, match="exit status 3: the reason$"):
        GeneratorRunner(config_from_mapping({})).run(command)


def test_unknown_program_fails() -> None:
    command = Command(ATTACHMENT, "", ("/nonexistent/generator-program",))
    with pytest.raises(GeneratorError, match="cannot start"):
        GeneratorRunner(config_from_mapping({})).run(command)


def test_timeout_stops_the_command(tmp_path: Any) -> None:
    marker = tmp_path / "late"
    cfg = config_from_mapping({"generator_timeout": 0.3})
    command = expand_segments(DATASET, [("sh -c 'sleep 30; touch {marker}'",
                                         {"marker": str(marker)})])
    with pytest.raises(GeneratorError, match="did not finish within 0.3 s"):
        GeneratorRunner(cfg).run(command)
    assert not marker.exists()


def test_true_template_runs_and_writes_nothing(beamtime_factory: Any) -> None:
    cfg = config_from_mapping({"file_dataset_metadata_generator": "true",
                               "datablock_metadata_generator": "true"})
    ctx = scandir_context(cfg, load_beamtime(beamtime_factory.metadata_path),
                          beamtime_factory.scandir)
    kw = keyword_table(cfg, ctx, scanname="s1")
    before = sorted(os.listdir(beamtime_factory.scandir))
    runner = GeneratorRunner(cfg)
    assert runner.run(build_command(cfg, FILE_DATASET, kw)) == ""
    datablock = build_command(cfg, DATABLOCK, kw)
    assert datablock.argv[0] == "true" and not runner.runs_in_process(datablock)
    assert runner.run(datablock, capture=True) == ""
    assert sorted(os.listdir(beamtime_factory.scandir)) == before


def test_empty_template_runs_nothing() -> None:
    cfg = config_from_mapping({"metadata_generated_callback": ""})
    command = build_command(cfg, CALLBACK, {})
    assert command.empty
    assert GeneratorRunner(cfg).run(command, capture=True) == ""


def test_command_logged_at_info_only_when_configured(caplog: pytest.LogCaptureFixture) -> None:
    command = expand_segments(CALLBACK, [("true {x}", {"x": "a b"})])
    caplog.set_level(logging.DEBUG, logger="scingestor.runner")
    GeneratorRunner(config_from_mapping({"log_generator_commands": True})).run(command)
    GeneratorRunner(config_from_mapping({})).run(command)
    levels = [record.levelno for record in caplog.records
              if record.getMessage().endswith(": true a b")]
    assert levels == [logging.INFO, logging.DEBUG]


def test_shell_templates_never_run_in_process() -> None:
    cfg = config_from_mapping({})
    command = expand_segments(DATASET, [("nxsfileinfo metadata x | cat", {})])
    assert command.shell and not GeneratorRunner(cfg).runs_in_process(command)
    plain = expand_segments(DATASET, [("/opt/bin/nxsfileinfo metadata x", {})])
    assert GeneratorRunner(cfg).runs_in_process(plain)
    assert not GeneratorRunner(cfg, in_process=False).runs_in_process(plain)


# --- temporary master copies -------------------------------------------------------------


@pytest.mark.parametrize("hardlink", [False, True], ids=["copy", "link"])
def test_temporary_master_copy(beamtime_factory: Any, tmp_path: Any, hardlink: bool) -> None:
    master = beamtime_factory.write_nexus_scan("multi", multi_entries=["scan1", "scan2"])
    with open(master, "rb") as handle:
        content = handle.read()
    target = str(tmp_path / "mirror" / "raw")
    with temporary_master_copy(master, target, hardlink) as first:
        assert first == os.path.join(target, "_tmp_scingestor_1_multi.nxs")
        with temporary_master_copy(master, target, hardlink) as second:
            assert second == os.path.join(target, "_tmp_scingestor_2_multi.nxs")
            with open(second, "rb") as handle:
                assert handle.read() == content
        assert not os.path.exists(second)
        with open(first, "rb") as handle:
            assert handle.read() == content
    assert os.listdir(target) == []
    assert os.path.exists(master)


def test_temporary_master_copy_removed_on_error(beamtime_factory: Any) -> None:
    master = beamtime_factory.write_fio_scan("fscan_1")
    directory = beamtime_factory.scandir
    with pytest.raises(RuntimeError):
        with temporary_master_copy(master, directory) as copy:
            assert os.path.isfile(copy)
            raise RuntimeError("generator failed")
    assert not [name for name in os.listdir(directory) if name.startswith("_tmp_scingestor_")]


def test_temporary_master_copy_of_missing_file_leaves_nothing(tmp_path: Any) -> None:
    with pytest.raises(FileNotFoundError):
        with temporary_master_copy(str(tmp_path / "gone.nxs"), str(tmp_path / "d")):
            pass
    assert os.listdir(tmp_path / "d") == []


def test_multi_entry_metadata_from_temporary_copy(beamtime_factory: Any, tmp_path: Any) -> None:
    master = beamtime_factory.write_nexus_scan("multi", multi_entries=["scan1", "scan2"])
    cfg = config_from_mapping({"ingestor_var_dir": str(tmp_path / "var")})
    ctx = scandir_context(cfg, load_beamtime(beamtime_factory.metadata_path),
                          beamtime_factory.scandir)
    with temporary_master_copy(master, ctx.metapath) as copy:
        kw = keyword_table(cfg, ctx, scanname="multi_2", masterscanname="multi",
                           entryname="scan2", masterfile=copy, ext="nxs")
        command = build_command(cfg, FILE_DATASET, kw)
        assert " -e 'scan2' " in command.text and copy in command.argv
        GeneratorRunner(cfg).run(command)
    output = os.path.join(ctx.metapath, "multi_2.scan.json")
    with open(output, encoding="utf-8") as handle:
        text = handle.read()
    assert '"pid": "99001234/multi_2"' in text
    assert sorted(os.listdir(ctx.metapath)) == ["multi_2.scan.json"]
