"""Generator templates: keywords, switches, the default command lines, quoting and path checks."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shlex
from typing import Any

import pytest

from scingestor.beamtime import parse_beamtime, scandir_context
from scingestor.config import config_from_mapping
from scingestor.generators import (
    ATTACHMENT,
    CALLBACK,
    DATABLOCK,
    DATABLOCK_STREAM,
    DATASET,
    FILE_DATASET,
    GeneratorError,
    UnsafeNameError,
    build_command,
    check_scan_name,
    check_token_within,
    expand_segments,
    keyword_table,
    template_text,
)
from scingestor.runner import GeneratorRunner

logger = logging.getLogger(__name__)

BT_FILE = "/gpfs/current/beamtime-metadata-99001234.json"
SCANDIR = "/gpfs/current/raw"
GROUPS = "-w 99001234-dmgt -c 99001234-dmgt,99001234-clbt,99001234-part,p00dmgt,p00staff"


def _context(cfg: Any, path: str = BT_FILE, scandir: str = SCANDIR, **doc: Any) -> Any:
    data = {"beamtimeId": "99001234", "beamline": "p00", "proposalId": "11112222"}
    data.update(doc)
    return scandir_context(cfg, parse_beamtime(path, json.dumps(data)), scandir)


def _keywords(cfg: Any, ctx: Any, **values: Any) -> dict[str, str]:
    values.setdefault("scanname", "myscan_00001")
    values.setdefault("masterfile", "/gpfs/current/raw/myscan_00001.nxs")
    values.setdefault("ext", "nxs")
    values.setdefault("plotfile", "/gpfs/current/raw/myscan_00001.png")
    values.setdefault("plotext", "png")
    return keyword_table(cfg, ctx, **values)


def _text(cfg: Any, key: str, tokens: Any = None, **values: Any) -> str:
    ctx = _context(cfg)
    return build_command(cfg, key, _keywords(cfg, ctx, **values), tokens).text


# --- the default templates and switches, no optional key set ---------------------------


def test_spec_example_all_defaults() -> None:
    cfg = config_from_mapping({})
    assert _text(cfg, FILE_DATASET) == (
        "nxsfileinfo metadata -k4  -o /gpfs/current/raw/myscan_00001.scan.json  "
        "--id-format '{proposalId}.{beamtimeId}' -z '' -e '' -b "
        "/gpfs/current/beamtime-metadata-99001234.json -p 99001234/myscan_00001  "
        f"{GROUPS} /gpfs/current/raw/myscan_00001.nxs -r raw  --add-empty-units "
    )
    assert _text(cfg, DATASET) == (
        "nxsfileinfo metadata -k4  -o /gpfs/current/raw/myscan_00001.scan.json  "
        "--id-format '{proposalId}.{beamtimeId}' -c 99001234-dmgt,99001234-clbt,"
        "99001234-part,p00dmgt,p00staff -w 99001234-dmgt -z '' -e '' -b "
        "/gpfs/current/beamtime-metadata-99001234.json -p 99001234/myscan_00001 -r raw  "
        "--add-empty-units "
    )
    assert _text(cfg, DATABLOCK) == (
        "nxsfileinfo origdatablock  -s *.pyc,*.origdatablock.json,*.scan.json,"
        "*.attachment.json,*~   -r ''  -p 99001234/myscan_00001  "
        f"{GROUPS} -o /gpfs/current/raw/myscan_00001.origdatablock.json  "
        "/gpfs/current/raw/myscan_00001 "
    )
    assert _text(cfg, DATABLOCK_STREAM) == (
        "nxsfileinfo origdatablock  -s *.pyc,*.origdatablock.json,*.scan.json,"
        f"*.attachment.json,*~  {GROUPS}  -r ''  -p 99001234/myscan_00001  "
        "/gpfs/current/raw/myscan_00001 "
    )
    assert _text(cfg, ATTACHMENT) == (
        f"nxsfileinfo attachment  {GROUPS}  -n '' -o "
        "/gpfs/current/raw/myscan_00001.attachment.json  /gpfs/current/raw/myscan_00001.png"
    )


def test_spec_example_datablock_tokens() -> None:
    cfg = config_from_mapping({})
    text = _text(cfg, DATABLOCK, ["myscan_00001", "pilatus1", "../lambda1/"])
    assert text.endswith(
        "origdatablock.json  /gpfs/current/raw/myscan_00001  /gpfs/current/raw/pilatus1  "
        "/gpfs/current/raw/../lambda1/ "
    )
    stream = _text(cfg, DATABLOCK_STREAM, ["myscan_00001", "pilatus1"])
    assert stream.endswith(
        "-p 99001234/myscan_00001  /gpfs/current/raw/myscan_00001  /gpfs/current/raw/pilatus1 "
    )


def test_spec_example_measurement_and_callback() -> None:
    cfg = config_from_mapping({})
    values = {"measurement": "mycalib", "lastmeasurement": "mycalib"}
    assert "-z 'mycalib' -e ''" in _text(cfg, FILE_DATASET, **values)
    assert "-z 'mycalib' -e ''" in _text(cfg, DATASET, **values)
    assert _text(cfg, CALLBACK, **values) == (
        "nxsfileinfo groupmetadata  mycalib -m /gpfs/current/raw/myscan_00001.scan.json "
        "-d /gpfs/current/raw/myscan_00001.origdatablock.json -a "
        "/gpfs/current/raw/myscan_00001.attachment.json -o /gpfs/current/raw/mycalib.scan.json"
        " -l /gpfs/current/raw/mycalib.origdatablock.json -t "
        "/gpfs/current/raw/mycalib.attachment.json -p 99001234/mycalib -f -k4 "
    )


def test_spec_example_id_pattern() -> None:
    cfg = config_from_mapping({"scicat_proposal_id_pattern": "{beamtimeid}"})
    assert "--id-format '{beamtimeId}' " in _text(cfg, DATASET)
    command = build_command(cfg, DATASET, _keywords(cfg, _context(cfg)))
    assert command.argv[command.argv.index("--id-format") + 1] == "{beamtimeId}"


def test_config_chapter_example_without_master_file() -> None:
    cfg = config_from_mapping({})
    ctx = _context(cfg, "/bt/beamtime-metadata-11112222.json", "/bt/raw",
                   beamtimeId="11112222", beamline="p99")
    command = build_command(cfg, DATASET, keyword_table(cfg, ctx, scanname="cal_00003"))
    assert command.text == (
        "nxsfileinfo metadata -k4  -o /bt/raw/cal_00003.scan.json  --id-format "
        "'{proposalId}.{beamtimeId}' -c 11112222-dmgt,11112222-clbt,11112222-part,p99dmgt,"
        "p99staff -w 11112222-dmgt -z '' -e '' -b /bt/beamtime-metadata-11112222.json "
        "-p 11112222/cal_00003 -r raw  --add-empty-units "
    )


# --- var dir and every optional switch ------------------------------------------------


def test_spec_example_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/ingestor")
    cfg = config_from_mapping({
        "ingestor_var_dir": "/var/lib/scingestor",
        "chmod_json_files": "0o662",
        "hidden_attributes": "nexdatas_source,nexdatas_strategy,units,NX_class",
        "metadata_copy_map_file": "{homepath}/.config/copymap.lst",
        "metadata_group_map_file": "{homepath}/.config/groupmap.lst",
        "oned_in_metadata": True,
        "max_oned_size": 10,
        "relative_path_in_datablock": True,
        "attachment_signal_names": "counts",
        "attachment_axes_names": "energy",
        "attachment_image_frame_number": 0,
        "override_attachment_signals": True,
        "raw_metadata_callback": True,
        "dataset_pid_prefix": "10.3204/",
        "add_empty_units": False,
    })
    var = "/var/lib/scingestor/gpfs/current/raw"
    values = {"lastmeasurement": "mycalib"}
    assert _text(cfg, FILE_DATASET, **values) == (
        f"nxsfileinfo metadata -k4  -o {var}/myscan_00001.scan.json  --id-format "
        "'{proposalId}.{beamtimeId}' -z '' -e '' -b "
        "/gpfs/current/beamtime-metadata-99001234.json -p 99001234/myscan_00001  "
        f"{GROUPS} /gpfs/current/raw/myscan_00001.nxs -x 0o662  -n "
        "nexdatas_source,nexdatas_strategy,units,NX_class  --copy-map-file "
        "/home/ingestor/.config/copymap.lst  --oned  --max-oned-size 10 "
    )
    assert _text(cfg, DATABLOCK, **values) == (
        "nxsfileinfo origdatablock  -s *.pyc,*.origdatablock.json,*.scan.json,"
        "*.attachment.json,*~   -r 'raw'  -p 10.3204/99001234/myscan_00001  "
        f"{GROUPS} -o {var}/myscan_00001.origdatablock.json  -x 0o662  "
        "/gpfs/current/raw/myscan_00001 "
    )
    assert _text(cfg, ATTACHMENT, **values) == (
        f"nxsfileinfo attachment  {GROUPS}  -n '' -o {var}/myscan_00001.attachment.json  "
        "/gpfs/current/raw/myscan_00001.png -x 0o662  -s counts  -e energy  -m 0  --override "
    )
    assert _text(cfg, CALLBACK, **values) == (
        f"nxsfileinfo groupmetadata  mycalib -m {var}/myscan_00001.scan.json -d "
        f"{var}/myscan_00001.origdatablock.json -a {var}/myscan_00001.attachment.json -o "
        f"{var}/mycalib.scan.json -l {var}/mycalib.origdatablock.json -t "
        f"{var}/mycalib.attachment.json -p 99001234/mycalib -f -k4  -x 0o662  "
        "--group-map-file /home/ingestor/.config/groupmap.lst  --raw "
    )


# --- user templates and switch rules (README "Configuration reference") --------------


def test_user_template_used_verbatim_without_switches() -> None:
    template = (
        "nxsfileinfo metadata  -o {scanpath}/{scanname}{scanpostfix}  -k3 -x 0o662  "
        "-r {relpath}  -b {beamtimefile} -p {beamtimeid}/{scanname} {scanpath}/{scanname}.nxs"
    )
    cfg = config_from_mapping({
        "file_dataset_metadata_generator": template,
        "chmod_json_files": "0o600",
        "oned_in_metadata": True,
    })
    assert template_text(cfg, FILE_DATASET) == template
    assert _text(cfg, FILE_DATASET) == (
        "nxsfileinfo metadata  -o /gpfs/current/raw/myscan_00001.scan.json  -k3 -x 0o662  "
        "-r raw  -b /gpfs/current/beamtime-metadata-99001234.json -p 99001234/myscan_00001 "
        "/gpfs/current/raw/myscan_00001.nxs"
    )
    # the other defaults still get their switches
    assert template_text(cfg, DATASET).endswith(
        " -r {relpath}  -x {chmod}  --oned  --add-empty-units "
    )


def test_dataset_switch_order_and_custom_switch_text() -> None:
    cfg = config_from_mapping({
        "chmod_json_files": "0o640",
        "hidden_attributes": "units",
        "metadata_copy_map_file": "/maps/copy.lst",
        "oned_in_metadata": True,
        "max_oned_size": 7,
        "chmod_generator_switch": " --mode {chmod} ",
    })
    text = template_text(cfg, DATASET)
    assert text.endswith(
        " -r {relpath}  --mode {chmod}  -n {hiddenattributes}  --copy-map-file {copymapfile} "
        " --oned  --max-oned-size {maxonedsize}  --add-empty-units "
    )
    assert template_text(cfg, DATABLOCK).endswith("{datablockpostfix}  --mode {chmod} ")
    assert template_text(cfg, CALLBACK).endswith("-f -k4  --mode {chmod} ")


def test_max_oned_size_needs_oned_and_non_zero() -> None:
    without_oned = config_from_mapping({"max_oned_size": 10})
    assert "--max-oned-size" not in template_text(without_oned, DATASET)
    zero = config_from_mapping({"max_oned_size": 0, "oned_in_metadata": True})
    assert "--oned " in template_text(zero, DATASET)
    assert "--max-oned-size" not in template_text(zero, DATASET)


def test_unset_optional_values_format_as_none() -> None:
    cfg = config_from_mapping({"chmod_generator_switch": " -x {chmod} ",
                               "metadata_generated_callback": "echo {chmod} {groupmapfile}"})
    kw = _keywords(cfg, _context(cfg))
    assert kw["chmod"] == "None" and kw["maxonedsize"] == "None" and kw["frame"] == "None"
    assert build_command(cfg, CALLBACK, kw).text == "echo None None"
    # the default switch is not appended when the value is unset
    assert "-x" not in template_text(cfg, DATASET)


def test_scanpath_postfix_per_token_also_for_user_templates() -> None:
    cfg = config_from_mapping({
        "datablock_metadata_generator": "mkdb {scanname}",
        "datablock_metadata_generator_scanpath_postfix": " [{scanpath}/{scanname}]",
    })
    ctx = _context(cfg)
    command = build_command(cfg, DATABLOCK, keyword_table(cfg, ctx, scanname="s1"),
                            ["s1", "pilatus", "../lambda1/"])
    assert command.text == (
        "mkdb s1 [/gpfs/current/raw/s1] [/gpfs/current/raw/pilatus] "
        "[/gpfs/current/raw/../lambda1/]"
    )
    assert command.argv == ("mkdb", "s1", "[/gpfs/current/raw/s1]",
                            "[/gpfs/current/raw/pilatus]", "[/gpfs/current/raw/../lambda1/]")


def test_keyword_table_values(tmp_path: Any) -> None:
    cfg = config_from_mapping({"relative_path_in_datablock": True,
                               "attachment_image_frame_number": 3})
    ctx = _context(cfg, ownerGroup="owners", accessGroups=["a", "b"])
    kw = keyword_table(cfg, ctx, scanname="sub/s7", masterscanname="multi", entryname="e3")
    assert kw["ownergroup"] == "owners" and kw["accessgroups"] == "a,b"
    assert kw["dbrelpath"] == "raw/sub" and kw["relpath"] == "raw"
    assert kw["masterscanname"] == "multi" and kw["entryname"] == "e3"
    assert kw["frame"] == "3" and kw["beamline"] == "p00" and kw["beamtimeid"] == "99001234"
    assert kw["idpattern"] == "{proposalId}.{beamtimeId}"
    assert kw["homepath"] == os.path.expanduser("~")
    assert keyword_table(cfg, ctx, scanname="s")["masterscanname"] == "s"


def test_argv_follows_template_quoting() -> None:
    cfg = config_from_mapping({})
    ctx = _context(cfg)
    for key in (FILE_DATASET, DATASET, DATABLOCK, DATABLOCK_STREAM, ATTACHMENT, CALLBACK):
        command = build_command(cfg, key, _keywords(cfg, ctx, lastmeasurement="m1"))
        assert not command.shell
        assert list(command.argv) == shlex.split(command.text)
    stream = build_command(cfg, DATABLOCK_STREAM, _keywords(cfg, ctx))
    assert stream.argv[:4] == (
        "nxsfileinfo", "origdatablock", "-s",
        "*.pyc,*.origdatablock.json,*.scan.json,*.attachment.json,*~",
    )


# --- errors ----------------------------------------------------------------------------


def test_unknown_keyword_names_template_and_keyword() -> None:
    cfg = dataclasses.replace(config_from_mapping({}),
                              dataset_metadata_generator="nxsfileinfo metadata {nosuchword}")
    with pytest.raises(GeneratorError) as info:
        build_command(cfg, DATASET, _keywords(cfg, _context(cfg)))
    assert "dataset_metadata_generator" in str(info.value)
    assert "{nosuchword}" in str(info.value)


def test_unterminated_quote_and_unknown_template_key() -> None:
    with pytest.raises(GeneratorError, match="unterminated"):
        expand_segments("metadata_generated_callback", [("echo '{scanname}", {"scanname": "x"})])
    with pytest.raises(GeneratorError, match="no_such_generator"):
        template_text(config_from_mapping({}), "no_such_generator")


# --- injection ---------------------------------------------------------------------------

EVIL = [
    "s1;touch${IFS}pwned",
    "$(touch pwned)",
    "`touch pwned`",
    "a'b;touch pwned;'",
    'a"b;touch pwned;"',
    "x\ntouch pwned",
    "x\\'; touch pwned #",
    "-n $HOME | touch pwned && touch pwned > pwned",
]


@pytest.mark.parametrize("shell_form", [False, True], ids=["argv", "sh-c"])
@pytest.mark.parametrize("value", EVIL)
def test_values_never_reach_a_shell(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, value: str, shell_form: bool
) -> None:
    monkeypatch.chdir(tmp_path)
    template = "printf '[%s]\\n' {scanname} x{scanname} '{scanname}' \"{scanname}\" x\\{scanname}"
    if shell_form:
        template += " | cat"
    cfg = config_from_mapping({"metadata_generated_callback": template})
    ctx = _context(cfg, str(tmp_path / "beamtime-metadata-99001234.json"), str(tmp_path))
    command = build_command(cfg, CALLBACK, keyword_table(cfg, ctx, scanname=value))
    assert command.shell is shell_form
    out = GeneratorRunner(cfg).run(command, capture=True)
    expected = [value, "x" + value, value, value, "x" + value]
    assert out == "".join(f"[{item}]\n" for item in expected)
    assert os.listdir(tmp_path) == []


def test_empty_unquoted_value_vanishes_like_in_sh() -> None:
    cfg = config_from_mapping({})
    template = "printf '[%s]' {ext} '{ext}' a{ext}"
    argv = expand_segments(CALLBACK, [(template, {"ext": ""})]).argv
    assert argv == ("printf", "[%s]", "", "a")
    piped = expand_segments(CALLBACK, [(template + " | cat", {"ext": ""})])
    assert piped.shell
    assert GeneratorRunner(cfg).run(piped, capture=True) == "[][a]"


# --- path safety -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["scan_00001", "sub/scan_1", "a.b", "./x", "x..y"])
def test_check_scan_name_accepts(name: str) -> None:
    check_scan_name(name)


@pytest.mark.parametrize(
    "name",
    ["", "  ", "/etc/passwd", "../x", "a/../../x", "a/..", "x\ny", "x\x00y", "tab\there",
     "del\x7f"],
)
def test_check_scan_name_rejects(name: str) -> None:
    with pytest.raises(UnsafeNameError):
        check_scan_name(name)


def test_check_token_within() -> None:
    check_token_within("../lambda1/", "/bt/raw/special", "/bt")
    check_token_within("pilatus1", "/bt/raw", "/bt")
    check_token_within("../..", "/bt/raw/special", "/bt")
    for token in ("../../..", "../../../etc", "x/../../../..", "", "a\nb"):
        with pytest.raises(UnsafeNameError):
            check_token_within(token, "/bt/raw/special", "/bt")
    with pytest.raises(UnsafeNameError):
        check_token_within("../bt2", "/bt", "/bt")
