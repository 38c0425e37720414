"""Dataset list records written from Sardana (no Sardana import needed).

The functions here take the relevant Sardana environment variables as a plain
mapping (``{name: value}``; a name that is absent from the mapping is an unset
variable) and compute the list file, the lines of a scan and the auto-grouping
record.  :func:`append_records` writes a record under an exclusive ``flock`` in a
single ``write`` so that concurrent writers (macros, NeXus writer, ingestor
device) never interleave.

Differences to the upstream helper, on purpose:

* directories are normalised (absolute, no trailing slash) everywhere, also as
  keys of ``SciCatMeasurements``; a corrupted (non-dict) value is repaired;
* an empty current measurement counts as "none" (no ``:<ts>`` line);
* the beamtime file is searched in the list directory and its parents (as
  given and resolved), then in ``BeamtimeFilePath``; no file means an error;
* ``SciCatDatasetListFileLocal`` may hold the host name to use.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import re
import socket
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

logger = logging.getLogger(__name__)

DEFAULT_BEAMTIME_PATH = "/gpfs/current"
DEFAULT_BEAMTIME_PREFIX = "beamtime-metadata-"
DEFAULT_BEAMTIME_EXT = ".json"
DEFAULT_LIST_PREFIX = "scicat-datasets-"
DEFAULT_LIST_EXT = ".lst"
NEXUS_EXTENSIONS = (".nxs", ".nx", ".h5", ".ndf")
MEASUREMENTS_VAR = "SciCatMeasurements"

_FALSE_TEXT = frozenset({"", "0", "false", "no", "off", "none"})
_TRUE_TEXT = frozenset({"1", "true", "yes", "on"})


class RecordError(Exception):
    """A record cannot be written; the message is meant for the spock user."""


class BeamtimeFileError(RecordError):
    """No (or no unique) beamtime metadata file for a scan directory."""


class ListFileError(RecordError):
    """The dataset list file cannot be written."""


def is_true(value: Any) -> bool:
    """Truth of an environment value; strings like ``"False"``/``"0"``/``""`` are false."""
    if isinstance(value, str):
        return value.strip().lower() not in _FALSE_TEXT
    return bool(value)


def check_name(name: str) -> str:
    """Return ``name`` stripped, or raise :class:`RecordError` if unusable as a list name.

    A measurement name becomes ``__command__ start NAME`` and ``NAME:<ts>``
    lines and a file name in the metadata directory, so it must be one token
    without ``:``, ``/``, control characters or ``..``.
    """
    text = (name or "").strip()
    if not text:
        raise RecordError("the measurement name is empty")
    if any(char.isspace() for char in text):
        raise RecordError(f"measurement name {text!r} contains white space")
    if any(ord(char) < 32 or ord(char) == 127 for char in text):
        raise RecordError(f"measurement name {text!r} contains control characters")
    for bad in (":", "/"):
        if bad in text:
            raise RecordError(f"measurement name {text!r} contains {bad!r}")
    if text in (".", "..", "__command__"):
        raise RecordError(f"measurement name {text!r} is reserved")
    return text


def normalise_dir(path: str) -> str:
    """Absolute, normalised form of ``path`` (``~`` expanded, no trailing slash)."""
    return os.path.normpath(os.path.abspath(os.path.expanduser(path)))


def scan_dir(env: Mapping[str, Any]) -> str:
    """The normalised ``ScanDir``; :class:`RecordError` when it is not set."""
    value = env.get("ScanDir")
    if not isinstance(value, str) or not value.strip():
        raise RecordError("ScanDir is not set")
    return normalise_dir(value.strip())


def record_dir(env: Mapping[str, Any]) -> str:
    """Directory of the list file: ``ScanDir``, or its parent when ``ScanNames`` exists."""
    directory = scan_dir(env)
    if "ScanNames" in env:
        directory = os.path.dirname(directory)
    return directory


def _beamtime_files(directory: str, prefix: str, ext: str) -> List[str]:
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    found = []
    for name in sorted(names):
        if (name.startswith(prefix) and name.endswith(ext)
                and len(name) > len(prefix) + len(ext)
                and os.path.isfile(os.path.join(directory, name))):
            found.append(name)
    return found


def _ancestors(path: str) -> List[str]:
    result = [path]
    while True:
        parent = os.path.dirname(path)
        if parent == path:
            return result
        result.append(parent)
        path = parent


def _inside(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip(os.sep) + os.sep)


def find_beamtime_file(directory: str, beamtime_path: str = DEFAULT_BEAMTIME_PATH,
                       prefix: str = DEFAULT_BEAMTIME_PREFIX,
                       ext: str = DEFAULT_BEAMTIME_EXT) -> Tuple[str, str]:
    """Return ``(path, beamtime_id)`` of the beamtime file that owns ``directory``.

    The nearest of ``directory`` and its parents holding a ``<prefix><id><ext>``
    file wins; the path is walked as given and, when different, resolved
    (symlinks, other mount names).  ``beamtime_path`` is searched last when the
    directory lies beneath it.  Raises :class:`BeamtimeFileError` when nothing
    is found or one directory holds several beamtime files.
    """
    directory = normalise_dir(directory)
    candidates: List[str] = []
    for start in (directory, os.path.realpath(directory)):
        for path in _ancestors(start):
            if path not in candidates:
                candidates.append(path)
    if beamtime_path:
        top = normalise_dir(beamtime_path)
        if (any(_inside(path, top) or _inside(path, os.path.realpath(top))
                for path in (directory, os.path.realpath(directory)))
                and top not in candidates):
            candidates.append(top)
    for path in candidates:
        names = _beamtime_files(path, prefix, ext)
        if len(names) > 1:
            raise BeamtimeFileError(
                f"several beamtime files in {path}: {', '.join(names)}; "
                "keep exactly one")
        if names:
            return os.path.join(path, names[0]), names[0][len(prefix):len(names[0]) - len(ext)]
    raise BeamtimeFileError(
        f"no beamtime file '{prefix}<id>{ext}' found in {directory} or its parent "
        f"directories (BeamtimeFilePath: {beamtime_path or 'not set'})")


def list_file_prefix(env: Mapping[str, Any]) -> str:
    """List file prefix from ``SciCatDatasetListFilePrefix`` / ``SciCatDatasetListFileLocal``.

    ``SciCatDatasetListFileLocal`` set to a true value gives ``scicat-datasets-<host>-``
    with the local host name; set to any other non-boolean text, that text is
    used as the host name.
    """
    prefix = env.get("SciCatDatasetListFilePrefix")
    if isinstance(prefix, str) and prefix:
        return prefix
    local = env.get("SciCatDatasetListFileLocal")
    if not is_true(local):
        return DEFAULT_LIST_PREFIX
    host = socket.gethostname()
    if isinstance(local, str) and local.strip().lower() not in _TRUE_TEXT:
        host = local.strip()
    return f"{DEFAULT_LIST_PREFIX}{host}-"


def _text(env: Mapping[str, Any], name: str, default: str) -> str:
    value = env.get(name)
    return value if isinstance(value, str) and value else default


def list_file(env: Mapping[str, Any], directory: Optional[str] = None) -> str:
    """Full path of the dataset list file for ``directory`` (default :func:`record_dir`)."""
    directory = record_dir(env) if directory is None else normalise_dir(directory)
    _, beamtime_id = find_beamtime_file(
        directory,
        env.get("BeamtimeFilePath", DEFAULT_BEAMTIME_PATH) or "",
        _text(env, "BeamtimeFilePrefix", DEFAULT_BEAMTIME_PREFIX),
        _text(env, "BeamtimeFileExt", DEFAULT_BEAMTIME_EXT),
    )
    ext = _text(env, "SciCatDatasetListFileExt", DEFAULT_LIST_EXT)
    return os.path.join(directory, f"{list_file_prefix(env)}{beamtime_id}{ext}")


def append_records(path: str, lines: Sequence[str]) -> str:
    """Append ``lines`` to the list file ``path`` as one locked write; return the text.

    Each line is written as ``"\\n" + line`` (the upstream file layout: a fresh
    file starts with an empty line).  Raises :class:`ListFileError` for an
    unwritable file or a line with a line break.
    """
    for line in lines:
        if not line or "\n" in line or "\r" in line:
            raise ListFileError(f"invalid list line {line!r}")
    text = "".join("\n" + line for line in lines)
    if not text:
        return text
    data = text.encode("utf-8")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    except OSError as exc:
        raise ListFileError(f"cannot open list file {path}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        written = 0
        while written < len(data):
            written += os.write(fd, data[written:])
        os.fsync(fd)
    except OSError as exc:
        if exc.errno == errno.EINTR:
            raise ListFileError(f"interrupted while writing {path}") from None
        raise ListFileError(f"cannot write list file {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    logger.debug("appended %r to %s", lines, path)
    return text


# ------------------------------------------------------------------ measurements
def measurements(env: Mapping[str, Any]) -> Dict[str, str]:
    """``SciCatMeasurements`` with normalised keys and without empty names.

    A value that is not a dict (e.g. the ``""`` the upstream macros could
    store) reads as empty.
    """
    value = env.get(MEASUREMENTS_VAR)
    result: Dict[str, str] = {}
    if isinstance(value, dict):
        for key, name in value.items():
            if isinstance(key, str) and key.strip() and isinstance(name, str) and name.strip():
                result[normalise_dir(key.strip())] = name.strip()
    return result


def current_measurement(env: Mapping[str, Any], directory: str) -> str:
    """The current measurement of ``directory`` ('' when none)."""
    return measurements(env).get(normalise_dir(directory), "")


def close_lines(name: str, now: Callable[[], float] = time.time) -> List[str]:
    """Lines closing measurement ``name`` and asking for its dataset."""
    return ["__command__ stop", f"{name}:{now()}"]


# ------------------------------------------------------------------------- scans
@dataclass(frozen=True)
class ScanLine:
    """The list line of one scan and what auto grouping needs to know about it."""

    line: str
    group: str
    directory: str  # the list file's directory (key of SciCatMeasurements)
    nexus: bool
    dir_prefixed: bool


def _scan_files(value: Any) -> List[str]:
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, (list, tuple)):
        return [str(item) for item in value if str(item).strip()]
    return []


def scan_base(scan_file: Any) -> Tuple[str, bool]:
    """``(base name, is NeXus)`` of the ``ScanFile`` value ('' when there is none).

    The first NeXus entry wins, then the first ``.fio``, then the first entry.
    """
    files = _scan_files(scan_file)
    for exts, nexus in ((NEXUS_EXTENSIONS, True), ((".fio",), False)):
        for name in files:
            base, ext = os.path.splitext(os.path.basename(name))
            if ext.lower() in exts:
                return base, nexus
    if files:
        return os.path.splitext(os.path.basename(files[0]))[0], False
    return "", False


def _common_group(rendered_low: str, rendered_high: str) -> str:
    group = os.path.commonprefix([rendered_low, rendered_high])
    return group[:-1] if group.endswith("_") else group


def _skip_modes(value: Any) -> List[str]:
    if isinstance(value, (list, tuple)):
        return [str(item).strip().upper() for item in value]
    if isinstance(value, str):
        return [part.upper() for part in re.split(r"[-;,.\s]+", value) if part]
    return []


def scan_line(env: Mapping[str, Any], reingest: bool = False, appendentry: bool = False,
              entryname: str = "scan",
              now: Callable[[], float] = time.time) -> Optional[ScanLine]:
    """The line for the last scan (``ScanFile``/``ScanID``), or ``None`` if none is due.

    Nothing is due unless ``AppendSciCatDataset`` is true, or
    ``NXSAppendSciCatDataset`` is true and ``reingest``; a NeXus scan is left to
    the NeXus writer when ``NXSAppendSciCatDataset`` is true and not ``reingest``.
    """
    nxs_append = is_true(env.get("NXSAppendSciCatDataset"))
    if not (is_true(env.get("AppendSciCatDataset")) or (nxs_append and reingest)):
        return None
    base, nexus = scan_base(env.get("ScanFile"))
    if not base:
        return None
    if nexus and nxs_append and not reingest:
        return None
    sid = env.get("ScanID")
    if isinstance(sid, str) and sid.strip().isdigit():
        sid = int(sid)
    if not isinstance(sid, int) or isinstance(sid, bool):
        raise RecordError("ScanID is not set: no scan to list")
    group = base
    if nexus and "{ScanID" in base:
        line = base.format(ScanID=sid)
        group = _common_group(base.format(ScanID=11111111), base.format(ScanID=99999999))
    elif nexus and "%" in base:
        line = base % sid
        group = _common_group(base % 11111111, base % 99999999)
    elif not nexus or not appendentry:
        line = f"{base}_{sid:05d}"
    else:
        line = f"{base}::/{entryname}_{sid:05d};{base}_{sid:05d}"
    if reingest or "INIT" in _skip_modes(env.get("NeXusSkipAcquisitionModes")):
        line = f"{line}:{now()}"
    prefixed = False
    if "ScanNames" in env and not is_true(env["ScanNames"]) and not appendentry:
        line, prefixed = f"{os.path.basename(scan_dir(env))}/{line}", True
    return ScanLine(line, group, record_dir(env), nexus, prefixed)


def grouping_lines(env: Mapping[str, Any], scan: ScanLine,
                   now: Callable[[], float] = time.time) -> Tuple[List[str], Dict[str, str]]:
    """Auto-grouping lines for ``scan`` and the new ``SciCatMeasurements`` value.

    The scan is put into the measurement named after its base name; a
    different current measurement of the directory is closed first.
    ``ScanNamesNoMetadata`` drops the scan line, ``ScanNamesNoGrouping`` the
    start/stop/update lines.
    """
    nometa = is_true(env.get("ScanNamesNoMetadata"))
    nogroup = is_true(env.get("ScanNamesNoGrouping"))
    table = measurements(env)
    lines: List[str] = []
    if not nometa and not nogroup:
        current = table.get(scan.directory, "")
        if current and current != scan.group:
            lines.extend(close_lines(current, now))
            lines.append(f"__command__ start {scan.group}")
        elif not current:
            lines.append(f"__command__ start {scan.group}")
    if not nometa:
        lines.append(scan.line)
        if not nogroup:
            lines.append("__command__ stop")
    if not nogroup:
        lines.append(f"{scan.group}:{now()}")
    if not nometa and not nogroup:
        table.pop(scan.directory, None)
    return lines, table


def dataset_lines(env: Mapping[str, Any], reingest: bool = False, appendentry: bool = False,
                  entryname: str = "scan", grouping: bool = True,
                  now: Callable[[], float] = time.time
                  ) -> Tuple[List[str], Optional[Dict[str, str]]]:
    """Lines for the last scan, with auto grouping when enabled.

    Returns ``(lines, measurements)``; ``measurements`` is the new
    ``SciCatMeasurements`` value, or ``None`` when it is unchanged.
    """
    scan = scan_line(env, reingest, appendentry, entryname, now)
    if scan is None:
        return [], None
    if grouping and (is_true(env.get("SciCatAutoGrouping")) or scan.dir_prefixed):
        return grouping_lines(env, scan, now)
    return [scan.line], None
