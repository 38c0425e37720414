"""Tests of scingestor.config: defaults, types, keywords, files, documentation."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml
from parts import require_part

from scingestor import config as config_module
from scingestor.config import (
    CONFIG_KEYS,
    GENERATOR_KEYWORDS,
    KEY_ALIASES,
    SECTIONS,
    ConfigError,
    IngestorConfig,
    config_from_mapping,
    load_config,
    render_reference,
)

REPO = Path(__file__).resolve().parent.parent

EXPECTED_DEFAULTS = {
    "beamtime_dirs": (),
    "beamtime_base_dir": "",
    "beamtime_filename_prefix": "beamtime-metadata-",
    "beamtime_filename_postfix": ".json",
    "beamtimeid_blacklist_file": None,
    "beamtime_type_blacklist": ("P",),
    "scandir_blacklist": (
        "/gpfs/current/scratch_bl",
        "/gpfs/current/processed",
        "/gpfs/current/shared",
    ),
    "max_scandir_depth": -1,
    "watch_scandir_subdir": False,
    "use_corepath_as_scandir": False,
    "datasets_filename_pattern": "scicat-datasets-{beamtimeid}.lst",
    "ingested_datasets_filename_pattern": "scicat-ingested-datasets-{beamtimeid}.lst",
    "ingestor_var_dir": "",
    "metadata_in_var_dir": True,
    "owner_access_groups_from_proposal": False,
    "inotify_timeout": 1.0,
    "get_event_timeout": 0.1,
    "ingestion_delay_time": 5.0,
    "recheck_dataset_list_interval": 100.0,
    "recheck_beamtime_file_interval": 100.0,
    "max_request_tries_number": 100,
    "scicat_url": "http://localhost:3000/api/v3",
    "scicat_users_login_path": "Users/login",
    "scicat_datasets_path": "Datasets",
    "scicat_proposals_path": "Proposals",
    "scicat_datablocks_path": "OrigDatablocks",
    "scicat_attachments_path": "Datasets/{pid}/Attachments",
    "ingestor_credential_file": None,
    "ingestor_username": "ingestor",
    "request_headers": {"Content-Type": "application/json", "Accept": "application/json"},
    "scicat_proposal_id_pattern": "{proposalid}.{beamtimeid}",
    "dataset_pid_prefix": "",
    "dataset_update_strategy": "patch",
    "metadata_fields_without_checks": (
        "techniques", "classification", "createdBy", "updatedBy", "datasetlifecycle",
        "numberOfFiles", "size", "createdAt", "updatedAt", "history", "creationTime",
        "version", "scientificMetadata", "endTime",
    ),
    "metadata_fields_cannot_be_patched": (),
    "scan_metadata_postfix": ".scan.json",
    "datablock_metadata_postfix": ".origdatablock.json",
    "attachment_metadata_postfix": ".attachment.json",
    "master_file_extension_list": ("nxs", "h5", "ndf", "nx", "fio"),
    "plot_file_extension_list": ("png", "nxs", "h5", "ndf", "nx", "fio"),
    "relative_path_in_datablock": False,
    "chmod_json_files": None,
    "hidden_attributes": None,
    "oned_in_metadata": False,
    "max_oned_size": None,
    "add_empty_units": True,
    "metadata_copy_map_file": None,
    "metadata_group_map_file": None,
    "raw_metadata_callback": False,
    "attachment_signal_names": None,
    "attachment_axes_names": None,
    "attachment_image_frame_number": None,
    "override_attachment_signals": False,
    "ingest_dataset_attachment": True,
    "log_generator_commands": False,
    "force_measurement_keyword": True,
    "force_generate_measurement": False,
    "call_metadata_generated_callback": False,
    "single_datablock_ingestion": False,
    "skip_multi_datablock_ingestion": False,
    "skip_multi_attachment_ingestion": False,
    "skip_scan_dataset_ingestion": False,
    "execute_commands": True,
    "retry_failed_dataset_ingestion": True,
    "retry_failed_attachment_ingestion": False,
    "file_dataset_metadata_generator": (
        "nxsfileinfo metadata -k4  -o {metapath}/{scanname}{scanpostfix}  "
        "--id-format '{idpattern}' -z '{measurement}' -e '{entryname}' "
        "-b {beamtimefile} -p {beamtimeid}/{scanname}  -w {ownergroup} "
        "-c {accessgroups} {masterfile}"
    ),
    "dataset_metadata_generator": (
        "nxsfileinfo metadata -k4  -o {metapath}/{scanname}{scanpostfix}  "
        "--id-format '{idpattern}' -c {accessgroups} -w {ownergroup} "
        "-z '{measurement}' -e '{entryname}' -b {beamtimefile} -p {beamtimeid}/{scanname}"
    ),
    "datablock_metadata_generator": (
        "nxsfileinfo origdatablock  "
        "-s *.pyc,*{datablockpostfix},*{scanpostfix},*{attachmentpostfix},*~   "
        "-r '{dbrelpath}'  -p {pidprefix}{beamtimeid}/{scanname}  "
        "-w {ownergroup} -c {accessgroups} -o {metapath}/{scanname}{datablockpostfix} "
    ),
    "datablock_metadata_stream_generator": (
        "nxsfileinfo origdatablock  "
        "-s *.pyc,*{datablockpostfix},*{scanpostfix},*{attachmentpostfix},*~  "
        "-w {ownergroup} -c {accessgroups}  -r '{dbrelpath}'  "
        "-p {pidprefix}{beamtimeid}/{scanname} "
    ),
    "datablock_metadata_generator_scanpath_postfix": " {scanpath}/{scanname} ",
    "attachment_metadata_generator": (
        "nxsfileinfo attachment  -w {ownergroup} -c {accessgroups}  -n '{entryname}' "
        "-o {metapath}/{scanname}{attachmentpostfix}  {plotfile}"
    ),
    "metadata_generated_callback": (
        "nxsfileinfo groupmetadata  {lastmeasurement} "
        "-m {metapath}/{scanname}{scanpostfix} "
        "-d {metapath}/{scanname}{datablockpostfix} "
        "-a {metapath}/{scanname}{attachmentpostfix} "
        "-o {metapath}/{lastmeasurement}{scanpostfix} "
        "-l {metapath}/{lastmeasurement}{datablockpostfix} "
        "-t {metapath}/{lastmeasurement}{attachmentpostfix} "
        "-p {beamtimeid}/{lastmeasurement} -f -k4 "
    ),
    "relative_path_generator_switch": " -r {relpath} ",
    "chmod_generator_switch": " -x {chmod} ",
    "hidden_attributes_generator_switch": " -n {hiddenattributes} ",
    "metadata_copy_map_file_generator_switch": " --copy-map-file {copymapfile} ",
    "metadata_group_map_file_generator_switch": " --group-map-file {groupmapfile} ",
    "oned_dataset_generator_switch": " --oned ",
    "max_oned_dataset_generator_switch": " --max-oned-size {maxonedsize} ",
    "add_empty_units_generator_switch": " --add-empty-units ",
    "raw_metadata_callback_switch": " --raw ",
    "attachment_signals_generator_switch": " -s {signals} ",
    "attachment_axes_generator_switch": " -e {axes} ",
    "attachment_frame_generator_switch": " -m {frame} ",
    "override_attachment_signals_generator_switch": " --override ",
    # keys of this implementation
    "token_in_query": False,
    "request_timeout": 30.0,
    "max_scans_in_flight": 4,
    "metadata_workers": 0,
    "scicat_web_url": "",
    "generator_timeout": 600.0,
    "retry_backoff_initial": 2.0,
    "retry_backoff_max": 300.0,
    "poll_only": False,
}  # fmt: skip

NEW_KEYS = {
    "token_in_query", "request_timeout", "max_scans_in_flight", "generator_timeout",
    "retry_backoff_initial", "retry_backoff_max", "poll_only", "scicat_web_url",
    "metadata_workers",
}  # fmt: skip


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def load_text(tmp_path: Path, text: str) -> IngestorConfig:
    return load_config(write(tmp_path, text))


def config_error(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(path + ": ")
    return message


# --- defaults -----------------------------------------------------------------


def test_key_set_is_the_85_original_keys_plus_ours() -> None:
    names = {key.name for key in CONFIG_KEYS}
    assert names == set(EXPECTED_DEFAULTS)
    assert len(names - NEW_KEYS) == 85


@pytest.mark.parametrize("key", sorted(EXPECTED_DEFAULTS))
def test_every_default(key: str) -> None:
    value = getattr(IngestorConfig(), key)
    expected = EXPECTED_DEFAULTS[key]
    if isinstance(expected, dict):
        assert isinstance(value, types.MappingProxyType)
        assert dict(value) == expected
    else:
        assert value == expected
        assert type(value) is type(expected)


def test_no_config_file_gives_defaults() -> None:
    cfg = load_config(None)
    assert cfg == IngestorConfig()
    assert cfg.explicit_keys == frozenset()
    assert cfg.source == ""


@pytest.mark.parametrize("text", ["", "---\n", "# only a comment\n", "~\n"])
def test_empty_document_gives_defaults(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    cfg = load_config(path)
    assert cfg.source == path
    assert dataclasses.replace(cfg, source="") == IngestorConfig()


def test_config_is_frozen_and_collections_immutable(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, "beamtime_dirs: [/a]\nrequest_headers: {X-A: b}\n")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.scicat_url = "http://x"  # type: ignore[misc]
    assert cfg.beamtime_dirs == ("/a",)
    with pytest.raises(TypeError):
        cfg.request_headers["X-B"] = "c"  # type: ignore[index]


# --- values and types -------------------------------------------------------------


def test_values_are_loaded(tmp_path: Path) -> None:
    cfg = load_text(
        tmp_path,
        """
beamtime_dirs: [/gpfs/current, "", null, /gpfs/commissioning]
max_scandir_depth: 2
ingestion_delay_time: 0
scicat_url: https://scicat.example.org/api/v3
request_headers: {Content-Type: application/json, X-Num: 5}
master_file_extension_list: [h5, 5]
metadata_fields_cannot_be_patched: [pid, type]
watch_scandir_subdir: true
dataset_pid_prefix: "10.3204/"
""",
    )
    assert cfg.beamtime_dirs == ("/gpfs/current", "/gpfs/commissioning")
    assert cfg.max_scandir_depth == 2
    assert cfg.ingestion_delay_time == 0.0
    assert cfg.scicat_url == "https://scicat.example.org/api/v3"
    assert dict(cfg.request_headers) == {"Content-Type": "application/json", "X-Num": "5"}
    assert cfg.master_file_extension_list == ("h5", "5")
    assert cfg.metadata_fields_cannot_be_patched == ("pid", "type")
    assert cfg.watch_scandir_subdir is True
    assert cfg.dataset_pid_prefix == "10.3204/"
    assert cfg.explicit_keys == {
        "beamtime_dirs", "max_scandir_depth", "ingestion_delay_time", "scicat_url",
        "request_headers", "master_file_extension_list", "metadata_fields_cannot_be_patched",
        "watch_scandir_subdir", "dataset_pid_prefix",
    }  # fmt: skip
    assert cfg.is_explicit("scicat_url") and not cfg.is_explicit("scicat_datasets_path")


def test_numeric_strings_and_integral_floats(tmp_path: Path) -> None:
    cfg = load_text(
        tmp_path,
        'max_scandir_depth: "5"\ninotify_timeout: " 2.5 "\nmax_oned_size: "1024"\n'
        "max_request_tries_number: 3.0\nrecheck_dataset_list_interval: 1000\n"
        'request_timeout: "1e1"\n',
    )
    assert cfg.max_scandir_depth == 5
    assert cfg.inotify_timeout == 2.5
    assert cfg.max_oned_size == 1024
    assert cfg.max_request_tries_number == 3
    assert cfg.recheck_dataset_list_interval == 1000.0
    assert cfg.request_timeout == 10.0


def test_recheck_intervals_accept_disabling_values(tmp_path: Path) -> None:
    cfg = load_text(
        tmp_path, "recheck_dataset_list_interval: 0\nrecheck_beamtime_file_interval: -1\n"
    )
    assert cfg.recheck_dataset_list_interval == 0.0
    assert cfg.recheck_beamtime_file_interval == -1.0


def test_scalars_become_strings(tmp_path: Path) -> None:
    cfg = load_text(
        tmp_path,
        "ingestor_var_dir: 12\nattachment_image_frame_number: 3\ningestor_username: 1234\n"
        "dataset_pid_prefix: 10.3204\n",
    )
    assert cfg.ingestor_var_dir == "12"
    assert cfg.attachment_image_frame_number == "3"
    assert cfg.ingestor_username == "1234"
    assert cfg.dataset_pid_prefix == "10.3204"


def test_wrong_integer_message_is_one_line_naming_file_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, "max_scandir_depth: a2\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: max_scandir_depth: expected an integer, got 'a2'"


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ("max_scandir_depth: 1.5", "max_scandir_depth", "expected an integer"),
        ("max_request_tries_number: true", "max_request_tries_number", "expected an integer"),
        ("max_request_tries_number: 0", "max_request_tries_number", "at least 1"),
        ("inotify_timeout: fast", "inotify_timeout", "expected a number"),
        ("get_event_timeout: .nan", "get_event_timeout", "finite"),
        ("ingestion_delay_time: -1", "ingestion_delay_time", "at least 0"),
        ("request_timeout: 0", "request_timeout", "greater than 0"),
        ("max_scans_in_flight: 0", "max_scans_in_flight", "at least 1"),
        ("metadata_workers: -1", "metadata_workers", "at least 0"),
        ("generator_timeout: [1]", "generator_timeout", "got a list"),
        ("beamtime_dirs: /gpfs/current", "beamtime_dirs", "expected a list of strings"),
        ("scandir_blacklist: [[/a]]", "scandir_blacklist", "entry that is a list"),
        ("request_headers: [a, b]", "request_headers", "expected a mapping"),
        ("request_headers: {Accept: [a]}", "request_headers", "'Accept'"),
        ("scicat_url: ftp://example.org", "scicat_url", "http:// or https://"),
        ("watch_scandir_subdir: maybe", "watch_scandir_subdir", "expected true or false"),
        ("poll_only: 2", "poll_only", "expected true or false"),
        ("ingestor_username: [a]", "ingestor_username", "expected a string"),
        ("ingestor_var_dir: {a: b}", "ingestor_var_dir", "got a mapping"),
        ("chmod_json_files: 0662", "chmod_json_files", "quote the octal mode"),
        ("chmod_json_files: rw-rw-r--", "chmod_json_files", "octal file mode"),
        ("retry_backoff_max: 1", "retry_backoff_max", "retry_backoff_initial"),
    ],
)
def test_wrong_types_and_values(tmp_path: Path, text: str, key: str, fragment: str) -> None:
    message = config_error(tmp_path, text + "\n")
    assert f": {key}: " in message
    assert fragment in message


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("true", True), ("True", True), ("yes", True), ("on", True), ("1", True),
        ("false", False), ("FALSE", False), ("no", False), ("off", False), ("0", False),
        (" Yes ", True),
    ],
)  # fmt: skip
def test_boolean_strings(tmp_path: Path, word: str, expected: bool) -> None:
    cfg = load_text(tmp_path, f'ingest_dataset_attachment: "{word}"\nexecute_commands: {word}\n')
    assert cfg.ingest_dataset_attachment is expected
    assert cfg.execute_commands is expected


def test_yaml_booleans_and_integers(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, "add_empty_units: false\noned_in_metadata: 1\nexecute_commands: 0\n")
    assert cfg.add_empty_units is False
    assert cfg.oned_in_metadata is True
    assert cfg.execute_commands is False


@pytest.mark.parametrize(
    ("value", "expected"),
    [("patch", "patch"), ("PATCH", "patch"), ("Mixed", "mixed"), ('"create"', "create"),
     ('"No"', "no"), ("no", "no")],
)  # fmt: skip
def test_update_strategy_normalised(tmp_path: Path, value: str, expected: str) -> None:
    cfg = load_text(tmp_path, f"dataset_update_strategy: {value}\n")
    assert cfg.dataset_update_strategy == expected


@pytest.mark.parametrize("value", ["sometimes", "yes", "3", "''"])
def test_bad_update_strategy(tmp_path: Path, value: str) -> None:
    message = config_error(tmp_path, f"dataset_update_strategy: {value}\n")
    assert "dataset_update_strategy: expected one of no, patch, create, mixed" in message


def test_attachement_alias(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, "retry_failed_attachement_ingestion: true\n")
    assert cfg.retry_failed_attachment_ingestion is True
    assert cfg.explicit_keys == {"retry_failed_attachment_ingestion"}
    both = load_text(
        tmp_path,
        "retry_failed_attachement_ingestion: true\nretry_failed_attachment_ingestion: yes\n",
    )
    assert both.retry_failed_attachment_ingestion is True


def test_conflicting_alias_and_key(tmp_path: Path) -> None:
    message = config_error(
        tmp_path,
        "retry_failed_attachment_ingestion: false\nretry_failed_attachement_ingestion: true\n",
    )
    assert "retry_failed_attachement_ingestion" in message
    assert "conflicts with retry_failed_attachment_ingestion" in message


def test_null_values_count_as_absent(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, "beamtime_type_blacklist:\nfile_dataset_metadata_generator: ~\n")
    assert cfg.beamtime_type_blacklist == ("P",)
    assert cfg.file_dataset_metadata_generator == EXPECTED_DEFAULTS[
        "file_dataset_metadata_generator"
    ]
    assert cfg.explicit_keys == frozenset()


def test_empty_optional_strings_are_unset(tmp_path: Path) -> None:
    cfg = load_text(
        tmp_path, 'hidden_attributes: ""\nchmod_json_files: ""\nmetadata_group_map_file: ""\n'
    )
    assert cfg.hidden_attributes is None
    assert cfg.chmod_json_files is None
    assert cfg.metadata_group_map_file is None


def test_chmod_accepts_quoted_octal(tmp_path: Path) -> None:
    assert load_text(tmp_path, "chmod_json_files: 0o662\n").chmod_json_files == "0o662"
    assert load_text(tmp_path, "chmod_json_files: '0662'\n").chmod_json_files == "0662"


def test_empty_list_is_kept(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, "beamtime_type_blacklist: []\nscandir_blacklist: []\n")
    assert cfg.beamtime_type_blacklist == ()
    assert cfg.scandir_blacklist == ()


# --- keywords and {homepath} --------------------------------------------------------


def test_homepath_substitution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    cfg = load_text(
        tmp_path,
        """
beamtime_dirs: ["{homepath}/bt", "/data/{{literal}}"]
beamtime_base_dir: "{homepath}/base"
scandir_blacklist: ["{homepath}/skip"]
beamtimeid_blacklist_file: "{homepath}/bl.lst"
ingestor_credential_file: "{homepath}/cred.json"
metadata_copy_map_file: "{homepath}/copy.lst"
metadata_group_map_file: "{homepath}/group.lst"
ingestor_var_dir: "{homepath}/var/{beamtimeid}"
datasets_filename_pattern: "scicat-datasets-{hostname}-{beamtimeid}.lst"
""",
    )
    assert cfg.beamtime_dirs == (f"{home}/bt", "/data/{literal}")
    assert cfg.beamtime_base_dir == f"{home}/base"
    assert cfg.scandir_blacklist == (f"{home}/skip",)
    assert cfg.beamtimeid_blacklist_file == f"{home}/bl.lst"
    assert cfg.ingestor_credential_file == f"{home}/cred.json"
    assert cfg.metadata_copy_map_file == f"{home}/copy.lst"
    assert cfg.metadata_group_map_file == f"{home}/group.lst"
    # patterns keep their keywords until use
    assert cfg.ingestor_var_dir == "{homepath}/var/{beamtimeid}"
    assert cfg.datasets_filename_pattern == "scicat-datasets-{hostname}-{beamtimeid}.lst"


def test_base_dir_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = config_from_mapping({"beamtime_base_dir": "beamtimes", "beamtime_dirs": ["rel"]})
    assert cfg.beamtime_base_dir == str(tmp_path / "beamtimes")
    assert cfg.beamtime_dirs == ("rel",)


@pytest.mark.parametrize(("value", "expected"), [("/", ""), ("/var/ing/", "/var/ing")])
def test_var_dir_slashes(value: str, expected: str) -> None:
    assert config_from_mapping({"ingestor_var_dir": value}).ingestor_var_dir == expected


def test_var_dir_accepts_hostname() -> None:
    cfg = config_from_mapping({"ingestor_var_dir": "/var/{hostname}/{beamtimeid}"})
    assert cfg.ingestor_var_dir == "/var/{hostname}/{beamtimeid}"


@pytest.mark.parametrize(
    ("key", "value", "keyword"),
    [
        ("file_dataset_metadata_generator", "nxsfileinfo metadata {foo} {scanname}", "{foo}"),
        ("chmod_generator_switch", " -x {mode} ", "{mode}"),
        ("ingestor_var_dir", "/var/{scanname}", "{scanname}"),
        ("datasets_filename_pattern", "{homepath}-{beamtimeid}.lst", "{homepath}"),
        ("scicat_attachments_path", "Datasets/{pidd}/Attachments", "{pidd}"),
        ("scicat_proposal_id_pattern", "{proposal}", "{proposal}"),
        ("beamtime_dirs", ["{hostname}/bt"], "{hostname}"),
        ("ingestor_credential_file", "{home}/c.json", "{home}"),
    ],
)
def test_unknown_keyword(key: str, value: object, keyword: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_mapping({key: value}, source="bl.yaml")
    message = str(info.value)
    assert message.startswith(f"bl.yaml: {key}: unknown keyword {keyword}")
    assert "\n" not in message


@pytest.mark.parametrize(
    "value", ["cmd {scanname", "cmd }", "cmd {}", "cmd {0}", "cmd {scanname.__class__}"]
)
def test_malformed_template(value: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_mapping({"attachment_metadata_generator": value})
    assert str(info.value).startswith("configuration: attachment_metadata_generator: invalid")


def test_doubled_braces_are_literal_in_templates() -> None:
    value = "echo '{{\"a\": 1}}' {scanname} {beamline} {hostname}"
    cfg = config_from_mapping({"metadata_generated_callback": value})
    assert cfg.metadata_generated_callback == value
    assert cfg.is_explicit("metadata_generated_callback")


def test_camel_case_proposal_keywords() -> None:
    cfg = config_from_mapping({"scicat_proposal_id_pattern": "{proposalId}-{beamtimeId}"})
    assert cfg.scicat_proposal_id_pattern == "{proposalId}-{beamtimeId}"


def test_all_default_templates_use_known_keywords() -> None:
    templates = {
        f.name: getattr(IngestorConfig(), f.name)
        for f in dataclasses.fields(IngestorConfig)
        if f.metadata and f.metadata.get("keywords") is GENERATOR_KEYWORDS
    }
    assert len(templates) == 20
    for template in templates.values():
        assert config_module.template_keywords(template) <= GENERATOR_KEYWORDS
    cfg = config_from_mapping(templates)
    assert cfg.explicit_keys == set(templates)


def test_to_dict_round_trip() -> None:
    cfg = config_from_mapping({"beamtime_dirs": ["/a"], "request_headers": {"A": "b"}})
    data = cfg.to_dict()
    json.dumps(data)
    assert set(data) == set(EXPECTED_DEFAULTS)
    again = config_from_mapping(data)
    assert dataclasses.replace(again, explicit_keys=cfg.explicit_keys) == cfg


# --- unknown keys and duplicates -------------------------------------------------------


def test_unknown_keys_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path, "scicat_ulr: http://x\npatch_dataset_fields_to_skip: [pid]\n"
                 "max_scandir_depth: 3\n")  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="scingestor.config"):
        cfg = load_config(path)
    assert cfg.max_scandir_depth == 3
    records = [r for r in caplog.records if r.name == "scingestor.config"]
    assert len(records) == 1
    message = records[0].getMessage()
    assert records[0].levelno == logging.WARNING
    assert path in message
    assert "patch_dataset_fields_to_skip" in message
    assert "scicat_ulr (did you mean scicat_url?)" in message


def test_known_keys_give_no_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="scingestor.config"):
        load_text(tmp_path, "scicat_url: http://x\nretry_failed_attachement_ingestion: no\n")
    assert [r for r in caplog.records if r.name == "scingestor.config"] == []


def test_duplicate_key_warns_last_wins(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="scingestor.config"):
        cfg = load_text(tmp_path, "max_scandir_depth: 1\nmax_scandir_depth: 4\n")
    assert cfg.max_scandir_depth == 4
    assert any("duplicate key 'max_scandir_depth'" in r.getMessage() for r in caplog.records)


# --- file errors ----------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = str(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: cannot read configuration file: No such file or directory"


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(str(tmp_path))
    assert str(info.value).startswith(f"{tmp_path}: cannot read configuration file: ")


_LOAD_CONFIG_ERROR = """import sys
from scingestor.config import ConfigError, load_config
try:
    load_config(sys.argv[1])
except ConfigError as exc:
    print(exc)
else:
    sys.exit("no ConfigError")
"""


def load_config_error(path: str) -> str:
    """``str(ConfigError)`` of ``load_config(path)`` where file modes are obeyed.

    Root reads any file (CAP_DAC_OVERRIDE): as root, ``load_config`` runs in a child
    whose capability bounding set lacks CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH
    (``setpriv``), so the file's mode applies to it as to any other user.
    """
    if os.geteuid() != 0:
        with pytest.raises(ConfigError) as info:
            load_config(path)
        return str(info.value)
    setpriv = shutil.which("setpriv")
    require_part("setpriv", setpriv is not None, "no setpriv on PATH")
    done = subprocess.run(
        [setpriv, "--bounding-set=-dac_override,-dac_read_search", sys.executable, "-c",
         _LOAD_CONFIG_ERROR, path], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.rstrip("\n")


def test_unreadable_file(tmp_path: Path) -> None:
    path = write(tmp_path, "scicat_url: http://x\n")
    os.chmod(path, 0)
    try:
        message = load_config_error(path)
    finally:
        os.chmod(path, 0o600)
    assert message == f"{path}: cannot read configuration file: Permission denied"


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"scicat_url: \xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(str(path))


@pytest.mark.parametrize(
    "text",
    ["scicat_url: [unclosed\n", "a: b\n  c: d\n", "key: 'open\n", "--- a\n--- b\n"],
)
def test_bad_yaml(tmp_path: Path, text: str) -> None:
    message = config_error(tmp_path, text)
    assert "invalid YAML" in message


def test_bad_yaml_names_the_line(tmp_path: Path) -> None:
    message = config_error(tmp_path, "scicat_url: http://x\nbeamtime_dirs: [a\n")
    assert re.search(r"invalid YAML at line \d+, column \d+: ", message)


@pytest.mark.parametrize(("text", "what"), [("- a\n- b\n", "a list"), ("just text\n", "'just")])
def test_top_level_not_a_mapping(tmp_path: Path, text: str, what: str) -> None:
    message = config_error(tmp_path, text)
    assert "top level must be a mapping" in message
    assert what in message


def test_mapping_errors_without_source() -> None:
    with pytest.raises(ConfigError) as info:
        config_from_mapping(["a"])  # type: ignore[arg-type]
    assert str(info.value).startswith("configuration: ")


def test_config_never_holds_secrets() -> None:
    names = {key.name for key in CONFIG_KEYS}
    assert not any("password" in name or name.endswith("token") for name in names)


# --- documentation -------------------------------------------------------------


def test_config_keys_metadata() -> None:
    section_ids = {section for section, _title in SECTIONS}
    names = [key.name for key in CONFIG_KEYS]
    assert len(names) == len(set(names))
    for key in CONFIG_KEYS:
        assert key.section in section_ids
        assert key.description and "\n" not in key.description
        assert key.type and key.default
    by_name = {key.name: key for key in CONFIG_KEYS}
    assert by_name["chmod_json_files"].default == "unset"
    assert by_name["add_empty_units_generator_switch"].default == '`" --add-empty-units "`'
    assert by_name["recheck_dataset_list_interval"].type == "float (s)"
    assert "seconds" in by_name["recheck_dataset_list_interval"].description
    assert "*New in this implementation.*" in by_name["poll_only"].description


def test_reference_has_every_key_once() -> None:
    text = render_reference()
    for key in CONFIG_KEYS:
        assert len(re.findall(rf"^\| `{key.name}` \|", text, re.M)) == 1
    for _section, title in SECTIONS:
        assert f"### {title}" in text
    for alias in KEY_ALIASES:
        assert alias in text


def test_readme_reference_is_current() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start, end = "<!-- config-reference:start -->", "<!-- config-reference:end -->"
    assert start in readme and end in readme
    section = readme.split(start, 1)[1].split(end, 1)[0]
    assert section.strip("\n") == render_reference().strip("\n"), (
        "README configuration reference is stale: regenerate it with "
        "`python -m scingestor.config --reference`"
    )


COMMON_KEYS = {
    "beamtime_dirs", "scicat_url", "scicat_users_login_path", "ingestor_credential_file",
    "ingestor_var_dir", "datasets_filename_pattern", "ingested_datasets_filename_pattern",
    "max_scandir_depth", "chmod_json_files", "dataset_update_strategy",
    "scicat_proposal_id_pattern", "scandir_blacklist", "recheck_dataset_list_interval",
}  # fmt: skip


def test_example_configuration(caplog: pytest.LogCaptureFixture) -> None:
    path = REPO / "config" / "scingestor.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    known = {key.name for key in CONFIG_KEYS} | set(KEY_ALIASES)
    assert set(data) <= known, sorted(set(data) - known)
    assert COMMON_KEYS <= set(data), sorted(COMMON_KEYS - set(data))
    with caplog.at_level(logging.WARNING, logger="scingestor.config"):
        cfg = load_config(str(path))
    assert [r for r in caplog.records if r.name == "scingestor.config"] == []
    assert cfg.explicit_keys == {KEY_ALIASES.get(k, k) for k in data}


def test_module_main(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert config_module.main(["--reference"]) == 0
    assert capsys.readouterr().out == render_reference()
    bad = write(tmp_path, "max_scandir_depth: deep\n")
    assert config_module.main(["--check", bad]) == 1
    captured = capsys.readouterr()
    assert captured.err == f"{bad}: max_scandir_depth: expected an integer, got 'deep'\n"
    good = write(tmp_path, "max_scandir_depth: 1\n", "good.yaml")
    assert config_module.main(["--check", good]) == 0
    assert capsys.readouterr().out == f"{good}: OK\n"


def test_path_below_a_file(tmp_path: Path) -> None:
    parent = write(tmp_path, "not a directory\n", "plain")
    path = os.path.join(parent, "config.yaml")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: cannot read configuration file: Not a directory"


def test_scicat_web_url_is_optional_and_checked() -> None:
    assert IngestorConfig().scicat_web_url == ""
    cfg = config_from_mapping({"beamtime_dirs": ["/a"],
                               "scicat_web_url": "https://scicat.example.org/"})
    assert cfg.scicat_web_url == "https://scicat.example.org"
    with pytest.raises(ConfigError, match="http"):
        config_from_mapping({"beamtime_dirs": ["/a"], "scicat_web_url": "scicat.example.org"})
