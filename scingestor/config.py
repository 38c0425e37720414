"""The ingestor configuration: one frozen dataclass, loaded from a YAML mapping.

Every YAML key is a field of :class:`IngestorConfig`, named exactly like the
key. The field metadata (type, section, description, allowed keywords) is the
single source of truth for loading, validation and the documentation
(:data:`CONFIG_KEYS`, :func:`render_reference`).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import logging
import math
import os
import string
import sys
import types
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import yaml

from .listproto import parse_truth

logger = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A configuration problem; the message is one line naming the file and the key."""


# ---------------------------------------------------------------------------
# keywords accepted in patterns and templates
# ---------------------------------------------------------------------------

HOMEPATH_KEYWORDS = frozenset({"homepath"})
VAR_DIR_KEYWORDS = frozenset({"beamtimeid", "homepath", "hostname"})
LIST_FILE_KEYWORDS = frozenset({"beamtimeid", "hostname"})
PROPOSAL_ID_KEYWORDS = frozenset({"proposalid", "beamtimeid", "proposalId", "beamtimeId"})
ATTACHMENT_PATH_KEYWORDS = frozenset({"pid"})
#: Keywords available in every generator template, switch and the callback.
GENERATOR_KEYWORDS = frozenset(
    {
        "homepath", "hostname", "beamtimeid", "beamline", "beamtimefile", "pidprefix",
        "idpattern", "ownergroup", "accessgroups", "scanpath", "metapath", "relpath",
        "dbrelpath", "scanname", "masterscanname", "entryname", "ext", "masterfile",
        "plotext", "plotfile", "scanpostfix", "datablockpostfix", "attachmentpostfix",
        "chmod", "hiddenattributes", "copymapfile", "groupmapfile", "signals", "axes",
        "frame", "maxonedsize", "measurement", "lastmeasurement",
    }
)

UPDATE_STRATEGIES = ("no", "patch", "create", "mixed")

#: Accepted alternative spellings of keys (README spelling → key).
KEY_ALIASES = {"retry_failed_attachement_ingestion": "retry_failed_attachment_ingestion"}

#: Section id → title, in documentation order.
SECTIONS = (
    ("discovery", "Where to look (discovery)"),
    ("timing", "Timing and retries"),
    ("scicat", "SciCat server and authentication"),
    ("generation", "Metadata files and generation behaviour"),
    ("templates", "Generator command templates and switches"),
)



def _key(
    default: Any,
    kind: str,
    section: str,
    doc: str,
    *,
    keywords: frozenset[str] | None = None,
    homepath: bool = False,
    minimum: float | None = None,
    positive: bool = False,
    new: bool = False,
) -> Any:
    """Declare one configuration field with its loading and documentation metadata."""
    meta = {
        "kind": kind,
        "section": section,
        "doc": doc,
        "keywords": keywords,
        "homepath": homepath,
        "minimum": minimum,
        "positive": positive,
        "new": new,
    }
    if isinstance(default, dict):
        frozen = dict(default)
        return field(default_factory=lambda: types.MappingProxyType(dict(frozen)), metadata=meta)
    return field(default=default, metadata=meta)


_GEN = GENERATOR_KEYWORDS
_D, _T, _S, _G, _P = "discovery", "timing", "scicat", "generation", "templates"

_DEFAULT_FIELDS_WITHOUT_CHECKS = (
    "techniques", "classification", "createdBy", "updatedBy", "datasetlifecycle",
    "numberOfFiles", "size", "createdAt", "updatedAt", "history", "creationTime",
    "version", "scientificMetadata", "endTime",
)


@dataclass(frozen=True)
class IngestorConfig:
    """All configuration keys with their defaults; build with :func:`load_config`."""

    # --- where to look -----------------------------------------------------
    beamtime_dirs: tuple[str, ...] = _key(
        (), "strlist", _D, "Directories that may contain beamtime metadata files.",
        homepath=True)
    beamtime_base_dir: str = _key(
        "", "str", _D, "Directory whose immediate sub-directories are all beamtime dirs "
        "(made absolute).", homepath=True)
    beamtime_filename_prefix: str = _key(
        "beamtime-metadata-", "str", _D, "A beamtime file name starts with this.")
    beamtime_filename_postfix: str = _key(
        ".json", "str", _D, "A beamtime file name ends with this.")
    beamtimeid_blacklist_file: str | None = _key(
        None, "optstr", _D, "Text file with one beamtime id per line to ignore.",
        homepath=True)
    beamtime_type_blacklist: tuple[str, ...] = _key(
        ("P",), "strlist", _D, "Beamtimes whose `proposalType` is listed are skipped; "
        "`[]` disables.")
    scandir_blacklist: tuple[str, ...] = _key(
        ("/gpfs/current/scratch_bl", "/gpfs/current/processed", "/gpfs/current/shared"),
        "strlist", _D, "Directories (exact absolute paths) never watched or ingested.",
        homepath=True)
    max_scandir_depth: int = _key(
        -1, "int", _D, "Levels below a beamtime dir searched for list files; negative = "
        "unlimited, 0 = the beamtime dir only.")
    watch_scandir_subdir: bool = _key(
        False, "bool", _D, "Keep descending below a directory that already has a list file.")
    use_corepath_as_scandir: bool = _key(
        False, "bool", _D, "Read and write under the beamtime file's `corePath` instead of "
        "the beamtime dir.")
    datasets_filename_pattern: str = _key(
        "scicat-datasets-{beamtimeid}.lst", "str", _D, "File name of the dataset list "
        "file in a scan dir.", keywords=LIST_FILE_KEYWORDS)
    ingested_datasets_filename_pattern: str = _key(
        "scicat-ingested-datasets-{beamtimeid}.lst", "str", _D, "File name of the "
        "ingested list file.", keywords=LIST_FILE_KEYWORDS)
    ingestor_var_dir: str = _key(
        "", "vardir", _D, "Root of the mirror tree for ingested lists and metadata; "
        "`\"\"` or `\"/\"` = none.", keywords=VAR_DIR_KEYWORDS)
    metadata_in_var_dir: bool = _key(
        True, "bool", _D, "Write generated JSON files below `ingestor_var_dir` (when set) "
        "instead of the scan dir.")
    owner_access_groups_from_proposal: bool = _key(
        False, "bool", _D, "Fetch missing `ownerGroup`/`accessGroups` from the SciCat "
        "proposal.")
    poll_only: bool = _key(
        False, "bool", _D, "Do not use inotify; find changes by the periodic rechecks "
        "only (network file systems).", new=True)

    # --- timing --------------------------------------------------------------
    inotify_timeout: float = _key(
        1.0, "float", _T, "Seconds the event reader blocks per read.", positive=True)
    get_event_timeout: float = _key(
        0.1, "float", _T, "Seconds a watcher waits for events per loop pass.", positive=True)
    ingestion_delay_time: float = _key(
        5.0, "float", _T, "Seconds to wait after a list change before ingesting (lets the "
        "DAQ finish writing).", minimum=0.0)
    recheck_dataset_list_interval: float = _key(
        100.0, "float", _T, "Re-read every dataset list this often, in **seconds** "
        "(the original counted 0.1 s loop passes); ≤0 disables.")
    recheck_beamtime_file_interval: float = _key(
        100.0, "float", _T, "Re-scan the beamtime dirs this often, in **seconds**; "
        "≤0 disables.")
    max_request_tries_number: int = _key(
        100, "int", _T, "Maximum tries of one SciCat request that got no answer or a gateway "
        "error (5xx); the repetitions are quick (0.25, 0.5, 1 s), so at most 4 tries are "
        "made; 1 = never repeat. A longer outage is waited out as a whole (README \"SciCat "
        "access\").", minimum=1)
    retry_backoff_initial: float = _key(
        2.0, "float", _T, "First delay in seconds before a failed scan (SciCat refused it, or "
        "its metadata could not be made) or a failed login is tried again (doubles each "
        "time).", positive=True, new=True)
    retry_backoff_max: float = _key(
        300.0, "float", _T, "Longest delay in seconds between two tries of a failed scan or "
        "login.", positive=True, new=True)
    generator_timeout: float = _key(
        600.0, "float", _T, "Seconds a generator command may run before it is stopped.",
        positive=True, new=True)
    request_timeout: float = _key(
        30.0, "float", _T, "Seconds to wait for a SciCat HTTP response.", positive=True,
        new=True)

    # --- SciCat --------------------------------------------------------------
    scicat_url: str = _key(
        "http://localhost:3000/api/v3", "url", _S, "Base URL of the SciCat API; ending in "
        "`/api/v4` selects API v4 (README \"SciCat API v3 and v4\").")
    scicat_users_login_path: str = _key(
        "Users/login", "str", _S, "Login endpoint (`auth/login` for the new backend), below "
        "the v3 root; with a v4 `scicat_url` and this key unset, `auth/login`.")
    scicat_datasets_path: str = _key("Datasets", "str", _S, "Dataset endpoint.")
    scicat_proposals_path: str = _key("Proposals", "str", _S, "Proposal endpoint.")
    scicat_datablocks_path: str = _key("OrigDatablocks", "str", _S, "OrigDatablock endpoint.")
    scicat_attachments_path: str = _key(
        "Datasets/{pid}/Attachments", "str", _S, "Attachment endpoint; `{pid}` is the "
        "URL-encoded dataset pid.", keywords=ATTACHMENT_PATH_KEYWORDS)
    ingestor_credential_file: str | None = _key(
        None, "optstr", _S, "Credential file: a JSON token, JSON user/password, or a "
        "plain password.", homepath=True)
    ingestor_username: str = _key(
        "ingestor", "str", _S, "Login user name when the credential file names none.")
    request_headers: Mapping[str, str] = _key(
        {"Content-Type": "application/json", "Accept": "application/json"}, "headers", _S,
        "Headers sent with every request (the `Authorization` header is added).")
    token_in_query: bool = _key(
        False, "bool", _S, "Also send the token as `access_token` query parameter "
        "(old servers only).", new=True)
    scicat_proposal_id_pattern: str = _key(
        "{proposalid}.{beamtimeid}", "str", _S, "SciCat proposal id of a beamtime "
        "(also passed to the generator as `{idpattern}`).",
        keywords=PROPOSAL_ID_KEYWORDS)
    dataset_pid_prefix: str = _key(
        "", "str", _S, "Prefix (e.g. a DOI prefix) of dataset pids on the server.")
    dataset_update_strategy: str = _key(
        "patch", "strategy", _S, "What to do with an existing, different dataset: "
        "`no`, `patch`, `create` or `mixed` (any case).")
    metadata_fields_without_checks: tuple[str, ...] = _key(
        _DEFAULT_FIELDS_WITHOUT_CHECKS, "strlist", _S, "Dotted field paths ignored when "
        "comparing a local dataset with the server copy.")
    metadata_fields_cannot_be_patched: tuple[str, ...] = _key(
        (), "strlist", _S, "Top-level fields removed from a PATCH body.")

    # --- metadata files and generation --------------------------------------
    scan_metadata_postfix: str = _key(
        ".scan.json", "str", _G, "Suffix of the generated dataset file.")
    datablock_metadata_postfix: str = _key(
        ".origdatablock.json", "str", _G, "Suffix of the generated datablock file.")
    attachment_metadata_postfix: str = _key(
        ".attachment.json", "str", _G, "Suffix of the generated attachment file.")
    master_file_extension_list: tuple[str, ...] = _key(
        ("nxs", "h5", "ndf", "nx", "fio"), "strlist", _G, "Extensions tried, in order, "
        "for the scan master file.")
    plot_file_extension_list: tuple[str, ...] = _key(
        ("png", "nxs", "h5", "ndf", "nx", "fio"), "strlist", _G, "Extensions tried, in "
        "order, for the attachment (plot) file.")
    relative_path_in_datablock: bool = _key(
        False, "bool", _G, "Datablock paths relative to the beamtime dir instead of the "
        "scan dir.")
    chmod_json_files: str | None = _key(
        None, "chmod", _G, "Octal file mode of generated JSON files, quoted, e.g. "
        "`\"0o662\"`.")
    hidden_attributes: str | None = _key(
        None, "optstr", _G, "Comma list of NeXus attributes left out of the metadata.")
    oned_in_metadata: bool = _key(
        False, "bool", _G, "Put the values of 1-D arrays into the metadata.")
    max_oned_size: int | None = _key(
        None, "optint", _G, "With `oned_in_metadata`, longer 1-D arrays are reduced.")
    add_empty_units: bool = _key(
        True, "bool", _G, "Add an empty unit to values that have none.")
    metadata_copy_map_file: str | None = _key(
        None, "optstr", _G, "Copy-map rules file for the dataset generator.", homepath=True)
    metadata_group_map_file: str | None = _key(
        None, "optstr", _G, "Group-map rules file for the measurement callback.",
        homepath=True)
    raw_metadata_callback: bool = _key(
        False, "bool", _G, "Measurement datasets are `raw` instead of `derived`.")
    attachment_signal_names: str | None = _key(
        None, "optstr", _G, "Comma list of signal names for the attachment plot.")
    attachment_axes_names: str | None = _key(
        None, "optstr", _G, "Comma list of axis names for the attachment plot.")
    attachment_image_frame_number: str | None = _key(
        None, "optstr", _G, "Image frame plotted in the attachment.")
    override_attachment_signals: bool = _key(
        False, "bool", _G, "The names above override the file's own plot signals.")
    ingest_dataset_attachment: bool = _key(
        True, "bool", _G, "Generate and ingest attachments at all.")
    log_generator_commands: bool = _key(
        False, "bool", _G, "Log every generator command at INFO (otherwise DEBUG).")
    force_measurement_keyword: bool = _key(
        True, "bool", _G, "During a measurement, add its name to a dataset's `keywords`.")
    force_generate_measurement: bool = _key(
        False, "bool", _G, "Also generate scan metadata for a line naming a running "
        "measurement.")
    call_metadata_generated_callback: bool = _key(
        False, "bool", _G, "Run the callback after every scan, not only in a measurement.")
    single_datablock_ingestion: bool = _key(
        False, "bool", _G, "Ignore an existing datablock file; always generate one.")
    skip_multi_datablock_ingestion: bool = _key(
        False, "bool", _G, "Ingest no datablock when the datablock file holds a list.")
    skip_multi_attachment_ingestion: bool = _key(
        False, "bool", _G, "Ingest no attachment when the attachment file holds a list.")
    skip_scan_dataset_ingestion: bool = _key(
        False, "bool", _G, "Generate metadata but do not send scan datasets.")
    execute_commands: bool = _key(
        True, "bool", _G, "Honour `__command__ start/stop` lines.")
    retry_failed_dataset_ingestion: bool = _key(
        True, "bool", _G, "Retry scans whose dataset or datablock failed.")
    retry_failed_attachment_ingestion: bool = _key(
        False, "bool", _G, "Also retry scans whose attachment failed (alias: "
        "`retry_failed_attachement_ingestion`).")

    # --- generator templates and switches ------------------------------------
    file_dataset_metadata_generator: str = _key(
        "nxsfileinfo metadata -k4  -o {metapath}/{scanname}{scanpostfix}  --id-format "
        "'{idpattern}' -z '{measurement}' -e '{entryname}' -b {beamtimefile} -p "
        "{beamtimeid}/{scanname}  -w {ownergroup} -c {accessgroups} {masterfile}",
        "str", _P, "Dataset generator used when a master file exists.", keywords=_GEN)
    dataset_metadata_generator: str = _key(
        "nxsfileinfo metadata -k4  -o {metapath}/{scanname}{scanpostfix}  --id-format "
        "'{idpattern}' -c {accessgroups} -w {ownergroup} -z '{measurement}' -e "
        "'{entryname}' -b {beamtimefile} -p {beamtimeid}/{scanname}",
        "str", _P, "Dataset generator used when no master file exists.", keywords=_GEN)
    datablock_metadata_generator: str = _key(
        "nxsfileinfo origdatablock  -s *.pyc,*{datablockpostfix},*{scanpostfix},"
        "*{attachmentpostfix},*~   -r '{dbrelpath}'  -p {pidprefix}{beamtimeid}/{scanname}  "
        "-w {ownergroup} -c {accessgroups} -o {metapath}/{scanname}{datablockpostfix} ",
        "str", _P, "Datablock generator (writes the datablock file).", keywords=_GEN)
    datablock_metadata_stream_generator: str = _key(
        "nxsfileinfo origdatablock  -s *.pyc,*{datablockpostfix},*{scanpostfix},"
        "*{attachmentpostfix},*~  -w {ownergroup} -c {accessgroups}  -r '{dbrelpath}'  "
        "-p {pidprefix}{beamtimeid}/{scanname} ",
        "str", _P, "Datablock generator printing to stdout (re-ingestion).", keywords=_GEN)
    datablock_metadata_generator_scanpath_postfix: str = _key(
        " {scanpath}/{scanname} ", "str", _P, "Appended to a datablock command once per "
        "token of the list line.", keywords=_GEN)
    attachment_metadata_generator: str = _key(
        "nxsfileinfo attachment  -w {ownergroup} -c {accessgroups}  -n '{entryname}' -o "
        "{metapath}/{scanname}{attachmentpostfix}  {plotfile}",
        "str", _P, "Attachment generator.", keywords=_GEN)
    metadata_generated_callback: str = _key(
        "nxsfileinfo groupmetadata  {lastmeasurement} -m {metapath}/{scanname}{scanpostfix}"
        " -d {metapath}/{scanname}{datablockpostfix} -a {metapath}/{scanname}"
        "{attachmentpostfix} -o {metapath}/{lastmeasurement}{scanpostfix} -l {metapath}/"
        "{lastmeasurement}{datablockpostfix} -t {metapath}/{lastmeasurement}"
        "{attachmentpostfix} -p {beamtimeid}/{lastmeasurement} -f -k4 ",
        "str", _P, "Command run after a scan's metadata exists (measurements).",
        keywords=_GEN)
    relative_path_generator_switch: str = _key(
        " -r {relpath} ", "str", _P, "Switch for the scan dir relative path.", keywords=_GEN)
    chmod_generator_switch: str = _key(
        " -x {chmod} ", "str", _P, "Switch for `chmod_json_files`.", keywords=_GEN)
    hidden_attributes_generator_switch: str = _key(
        " -n {hiddenattributes} ", "str", _P, "Switch for `hidden_attributes`.", keywords=_GEN)
    metadata_copy_map_file_generator_switch: str = _key(
        " --copy-map-file {copymapfile} ", "str", _P, "Switch for `metadata_copy_map_file`.",
        keywords=_GEN)
    metadata_group_map_file_generator_switch: str = _key(
        " --group-map-file {groupmapfile} ", "str", _P, "Switch for "
        "`metadata_group_map_file`.", keywords=_GEN)
    oned_dataset_generator_switch: str = _key(
        " --oned ", "str", _P, "Switch for `oned_in_metadata`.", keywords=_GEN)
    max_oned_dataset_generator_switch: str = _key(
        " --max-oned-size {maxonedsize} ", "str", _P, "Switch for `max_oned_size`.",
        keywords=_GEN)
    add_empty_units_generator_switch: str = _key(
        " --add-empty-units ", "str", _P, "Switch for `add_empty_units`.", keywords=_GEN)
    raw_metadata_callback_switch: str = _key(
        " --raw ", "str", _P, "Switch for `raw_metadata_callback`.", keywords=_GEN)
    attachment_signals_generator_switch: str = _key(
        " -s {signals} ", "str", _P, "Switch for `attachment_signal_names`.", keywords=_GEN)
    attachment_axes_generator_switch: str = _key(
        " -e {axes} ", "str", _P, "Switch for `attachment_axes_names`.", keywords=_GEN)
    attachment_frame_generator_switch: str = _key(
        " -m {frame} ", "str", _P, "Switch for `attachment_image_frame_number`.",
        keywords=_GEN)
    override_attachment_signals_generator_switch: str = _key(
        " --override ", "str", _P, "Switch for `override_attachment_signals`.", keywords=_GEN)

    # --- not YAML keys -----------------------------------------------------
    explicit_keys: frozenset = field(default_factory=frozenset)
    source: str = ""

    def is_explicit(self, key: str) -> bool:
        """Return whether ``key`` was given (non-null) in the configuration file."""
        return key in self.explicit_keys

    def to_dict(self) -> dict[str, Any]:
        """Return the configuration keys as plain Python values (for logging)."""
        out: dict[str, Any] = {}
        for f in _KEY_FIELDS:
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, types.MappingProxyType):
                value = dict(value)
            out[f.name] = value
        return out


_KEY_FIELDS = tuple(f for f in dataclasses.fields(IngestorConfig) if f.metadata)
_FIELDS_BY_NAME = {f.name: f for f in _KEY_FIELDS}


# ---------------------------------------------------------------------------
# value conversion
# ---------------------------------------------------------------------------


class _Bad(Exception):
    """Internal: a value problem, turned into a ConfigError naming file and key."""


def _describe(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _to_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise _Bad(f"expected a string, got {_describe(value)}")


def _to_bool(value: Any) -> bool:
    truth = parse_truth(value)
    if truth is None:
        raise _Bad(f"expected true or false, got {_describe(value)}")
    return truth


def _to_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _Bad(f"expected a number, got {_describe(value)}")
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except ValueError:
        raise _Bad(f"expected a number, got {_describe(value)}") from None
    if not math.isfinite(number):
        raise _Bad(f"expected a finite number, got {_describe(value)}")
    return number


def _to_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        number = _to_float(value)
    except _Bad:
        raise _Bad(f"expected an integer, got {_describe(value)}") from None
    if not number.is_integer():
        raise _Bad(f"expected an integer, got {_describe(value)}")
    return int(number)


def _to_strlist(value: Any) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)):
        raise _Bad(f"expected a list of strings, got {_describe(value)}")
    items = []
    for item in value:
        if item is None or item == "":
            continue
        if isinstance(item, (list, tuple, Mapping)):
            raise _Bad(f"expected a list of strings, got an entry that is {_describe(item)}")
        items.append(_to_str(item))
    return tuple(items)


def _to_headers(value: Any) -> types.MappingProxyType:
    if not isinstance(value, Mapping):
        raise _Bad(f"expected a mapping of header names to values, got {_describe(value)}")
    headers = {}
    for name, item in value.items():
        if item is None or isinstance(item, (list, tuple, Mapping)):
            raise _Bad(f"header {name!r}: expected a string value, got {_describe(item)}")
        headers[_to_str(name)] = _to_str(item)
    return types.MappingProxyType(headers)


def _to_strategy(value: Any) -> str:
    if value is False:  # YAML reads an unquoted `no` as false
        return "no"
    if isinstance(value, str) and value.strip().lower() in UPDATE_STRATEGIES:
        return value.strip().lower()
    raise _Bad(f"expected one of {', '.join(UPDATE_STRATEGIES)}, got {_describe(value)}")


def _to_chmod(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        raise _Bad("an unquoted number is not a file mode; quote the octal mode, e.g. \"0o662\"")
    text = _to_str(value).strip()
    if not text:
        return None
    try:
        mode = int(text, 8)
    except ValueError:
        raise _Bad(f"expected an octal file mode such as \"0o662\", got {text!r}") from None
    if not 0 <= mode <= 0o7777:
        raise _Bad(f"file mode out of range: {text!r}")
    return text


def _to_optstr(value: Any) -> str | None:
    text = _to_str(value)
    return text if text != "" else None


def _to_vardir(value: Any) -> str:
    return _to_str(value).rstrip("/")


def _to_url(value: Any) -> str:
    text = _to_str(value).strip()
    if not text.startswith(("http://", "https://")) or len(text.split("://", 1)[1]) == 0:
        raise _Bad(f"expected an http:// or https:// URL, got {text!r}")
    return text


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "str": _to_str,
    "optstr": _to_optstr,
    "vardir": _to_vardir,
    "url": _to_url,
    "bool": _to_bool,
    "int": _to_int,
    "optint": _to_int,
    "float": _to_float,
    "strlist": _to_strlist,
    "headers": _to_headers,
    "strategy": _to_strategy,
    "chmod": _to_chmod,
}


def template_keywords(template: str) -> set[str]:
    """Return the ``{keyword}`` names used in ``template`` (``{{``/``}}`` are literal).

    Raises ``ValueError`` for malformed braces, positional fields and attribute
    or index access.
    """
    names = set()
    for _literal, name, spec, _conv in string.Formatter().parse(template):
        if name is None:
            continue
        if name == "" or name.isdigit():
            raise ValueError("empty or numbered placeholder '{}'; write literal braces as {{ }}")
        if not name.isidentifier():
            raise ValueError(f"placeholder {{{name}}} is not a plain keyword")
        if spec and ("{" in spec or "}" in spec):
            raise ValueError(f"nested placeholder in {{{name}:{spec}}}")
        names.add(name)
    return names


def _check_keywords(text: str, allowed: frozenset[str]) -> None:
    try:
        used = template_keywords(text)
    except ValueError as exc:
        raise _Bad(f"invalid pattern {text!r}: {exc}") from None
    unknown = sorted(used - allowed)
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(allowed), n=1)
        hint = f" (did you mean {{{close[0]}}}?)" if close else ""
        if len(allowed) <= 5:
            hint += "; allowed here: " + ", ".join("{" + k + "}" for k in sorted(allowed))
        else:
            hint += "; see the generator keywords in the configuration reference"
        raise _Bad(f"unknown keyword {{{unknown[0]}}}{hint}")
    try:
        text.format(**{name: "" for name in allowed})
    except (ValueError, KeyError, IndexError) as exc:
        raise _Bad(f"invalid pattern {text!r}: {exc}") from None


def _homepath(text: str) -> str:
    _check_keywords(text, HOMEPATH_KEYWORDS)
    return text.format(homepath=os.path.expanduser("~"))


def _convert(f: dataclasses.Field, value: Any) -> Any:
    meta = f.metadata
    result = _CONVERTERS[meta["kind"]](value)
    if meta["homepath"]:
        if isinstance(result, tuple):
            result = tuple(_homepath(item) for item in result)
        elif result:
            result = _homepath(result)
    elif meta["keywords"] is not None and result:
        _check_keywords(result, meta["keywords"])
    if meta["minimum"] is not None and result < meta["minimum"]:
        raise _Bad(f"must be at least {meta['minimum']:g}, got {_describe(value)}")
    if meta["positive"] and result <= 0:
        raise _Bad(f"must be greater than 0, got {_describe(value)}")
    if f.name == "beamtime_base_dir" and result:
        result = os.path.abspath(result)
    return result


# ---------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """Safe loader that warns about duplicate keys (the last one wins)."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> dict:
    loader.flatten_mapping(node)
    seen: set = set()
    for key_node, _value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:
            continue
        if duplicate:
            logger.warning(
                "%s: line %d: duplicate key %r; the last value is used",
                loader.name, key_node.start_mark.line + 1, key,
            )
    return loader.construct_mapping(node, deep=True)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _parse_yaml(text: str, label: str) -> Any:
    loader = _Loader(text)
    loader.name = label
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "syntax error"
        raise ConfigError(f"{label}: invalid YAML{where}: {problem}") from None
    except yaml.YAMLError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "syntax error"
        raise ConfigError(f"{label}: invalid YAML: {first}") from None
    finally:
        loader.dispose()


def load_config(path: str | None) -> IngestorConfig:
    """Load the configuration file ``path``; ``None`` gives all defaults.

    Raises :class:`ConfigError` for an unreadable file, bad YAML, a top level
    that is not a mapping, wrong types and bad values.
    """
    if path is None:
        return IngestorConfig()
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: cannot read configuration file: not UTF-8 text") from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(f"{path}: cannot read configuration file: {reason}") from None
    return config_from_mapping(_parse_yaml(text, path), source=path)


def config_from_mapping(data: Mapping[str, Any] | None, source: str = "") -> IngestorConfig:
    """Build an :class:`IngestorConfig` from a parsed YAML mapping.

    ``source`` names the file in error messages. Null values count as absent.
    """
    label = source or "configuration"
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{label}: the top level must be a mapping of keys to values, "
            f"got {_describe(data)}"
        )
    values: dict[str, Any] = {}
    given: dict[str, str] = {}
    unknown: list[str] = []
    for raw_key, value in data.items():
        key = str(raw_key)
        name = KEY_ALIASES.get(key, key)
        if name not in _FIELDS_BY_NAME:
            unknown.append(key)
            continue
        if value is None:
            continue
        try:
            converted = _convert(_FIELDS_BY_NAME[name], value)
        except _Bad as exc:
            raise ConfigError(f"{label}: {key}: {exc}") from None
        if name in values and values[name] != converted:
            raise ConfigError(
                f"{label}: {key}: conflicts with {given[name]}; give only one of them"
            )
        values[name] = converted
        given[name] = key
    initial = values.get("retry_backoff_initial", IngestorConfig.retry_backoff_initial)
    maximum = values.get("retry_backoff_max", IngestorConfig.retry_backoff_max)
    if maximum < initial:
        raise ConfigError(
            f"{label}: retry_backoff_max: must not be less than retry_backoff_initial "
            f"({maximum:g} < {initial:g})"
        )
    if unknown:
        logger.warning("%s: unknown configuration keys ignored: %s", label, _unknown_text(unknown))
    return IngestorConfig(**values, explicit_keys=frozenset(values), source=source)


def _unknown_text(keys: Sequence[str]) -> str:
    names = list(_FIELDS_BY_NAME) + list(KEY_ALIASES)
    parts = []
    for key in sorted(keys):
        close = difflib.get_close_matches(key, names, n=1)
        parts.append(f"{key} (did you mean {close[0]}?)" if close else key)
    return ", ".join(parts)


# ---------------------------------------------------------------------------
# documentation
# ---------------------------------------------------------------------------


class ConfigKey(NamedTuple):
    """Documentation of one configuration key."""

    name: str
    type: str
    default: str
    description: str
    section: str
    keywords: str


_TYPE_NAMES = {
    "str": "str",
    "optstr": "str",
    "vardir": "str",
    "url": "str (URL)",
    "bool": "bool",
    "int": "int",
    "optint": "int",
    "float": "float",
    "strlist": "list of str",
    "headers": "mapping str→str",
    "strategy": "str (enum)",
    "chmod": "str (octal)",
}


def _show_default(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, float):
        return f"`{value:g}`"
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return f"`{json.dumps(value)}`" if isinstance(value, str) else f"`{value}`"
    if isinstance(value, tuple):
        return f"`{json.dumps(list(value))}`"
    return f"`{json.dumps(dict(value))}`"


def _describe_keywords(f: dataclasses.Field) -> str:
    allowed = HOMEPATH_KEYWORDS if f.metadata["homepath"] else f.metadata["keywords"]
    if not allowed:
        return "–"
    if allowed is GENERATOR_KEYWORDS:
        return "generator keywords"
    return " ".join(f"`{{{k}}}`" for k in sorted(allowed))


def _config_keys() -> tuple[ConfigKey, ...]:
    defaults = IngestorConfig()
    keys = []
    for f in _KEY_FIELDS:
        unit = " (s)" if f.metadata["kind"] == "float" else ""
        doc = f.metadata["doc"] + (" *New in this implementation.*" if f.metadata["new"] else "")
        keys.append(
            ConfigKey(
                name=f.name,
                type=_TYPE_NAMES[f.metadata["kind"]] + unit,
                default=_show_default(getattr(defaults, f.name)),
                description=doc,
                section=f.metadata["section"],
                keywords=_describe_keywords(f),
            )
        )
    return tuple(keys)


#: Every configuration key, in documentation order.
CONFIG_KEYS: tuple[ConfigKey, ...] = _config_keys()


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_reference() -> str:
    """Return the markdown configuration reference (one table per section)."""
    lines = [
        "* The configuration is one YAML mapping; every key is optional and durations "
        "are in seconds.",
        "* A wrong type or value stops the program with one line naming the file and "
        "the key; unknown keys are reported in one warning; a null value counts as absent "
        "and an empty optional string as unset.",
        "* Booleans: YAML booleans or the strings `true/false/yes/no/on/off/1/0` "
        "(any case).",
        "* `{homepath}` is replaced by the home directory in the keys that list it; "
        "the other patterns keep their keywords until use. Only the keywords listed for "
        "a key are allowed (checked at start-up); write literal braces as `{{` and `}}`.",
        "* A generator template given in the file is used as written: the switches are "
        "appended to the built-in templates only.",
        "* `retry_failed_attachement_ingestion` is accepted as an alias of "
        "`retry_failed_attachment_ingestion`.",
        "",
        "Generator keywords: "
        + ", ".join(f"`{{{k}}}`" for k in sorted(GENERATOR_KEYWORDS))
        + ".",
    ]
    for section, title in SECTIONS:
        lines += ["", f"### {title}", "", "| Key | Type | Default | Keywords | Meaning |",
                  "|---|---|---|---|---|"]
        for key in CONFIG_KEYS:
            if key.section == section:
                cells = (f"`{key.name}`", key.type, key.default, key.keywords, key.description)
                lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m scingestor.config``: print the reference or check a file."""
    parser = argparse.ArgumentParser(
        prog="python -m scingestor.config",
        description="Show the configuration reference or check a configuration file.",
    )
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--reference", action="store_true", help="print the markdown reference")
    group.add_argument("--check", metavar="FILE", help="load FILE and report the first problem")
    args = parser.parse_args(argv)
    if args.reference:
        sys.stdout.write(render_reference())
        return 0
    logging.basicConfig(format="%(levelname)s : %(message)s")
    try:
        load_config(args.check)
    except ConfigError as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    sys.stdout.write(f"{args.check}: OK\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
