"""The configuration key table: :class:`IngestorConfig`, one frozen dataclass field per YAML key.

Each field's metadata (type, section, description, allowed keywords, limits) is
declared here with :func:`_key` and is the single source of truth for loading
(:mod:`scingestor.configvalues`, :mod:`scingestor.config`) and for the reference
(:mod:`scingestor.configdoc`, README "Configuration reference").
"""

from __future__ import annotations

import dataclasses
import types
from dataclasses import dataclass, field
from typing import Any, Mapping

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
    scicat_web_url: str = _key(
        "", "opturl", _S, "Web address of the catalogue (e.g. `https://scicat.example.org`); "
        "when set, the device and the panel link each dataset to "
        "`{scicat_web_url}/datasets/{pid}` (the pid URL-encoded). Empty: no links.", new=True)
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
    max_scans_in_flight: int = _key(
        4, "int", _S, "Most scans of a list sent to SciCat at once (a fixed pool of that many "
        "sending threads over one connection pool); metadata is still generated and the "
        "ingested list written in list order, a measurement is sent after its scans "
        "(README \"SciCat access\"). 1 = one scan after another.", minimum=1, new=True)
    metadata_workers: int = _key(
        0, "int", _S, "Scans whose metadata is generated at once: this process plus worker "
        "processes started when a second scan waits (docs/architecture.md \"Metadata "
        "generation on several cores\"). 0 = the number of usable CPUs, at most 4; "
        "1 = one scan after another in this process.", minimum=0, new=True)
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
        for f in KEY_FIELDS:
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, types.MappingProxyType):
                value = dict(value)
            out[f.name] = value
        return out


#: The fields that are YAML keys (not ``explicit_keys``/``source``), in documentation order.
KEY_FIELDS = tuple(f for f in dataclasses.fields(IngestorConfig) if f.metadata)
#: YAML key → its field.
FIELDS_BY_NAME = {f.name: f for f in KEY_FIELDS}
