"""Dataset list records written from Sardana (no Sardana import needed).

The functions here take the relevant Sardana environment variables as a plain
mapping (``{name: value}``; a name that is absent from the mapping is an unset
variable) and compute the list file, the lines of a scan and the auto-grouping
record. The protocol itself - record strings, the name rule, the locked durable
append, the current measurement replayed from the list, truth values - is
:mod:`scingestor.listproto`, shared with the ingestor (docs/sardana.md "How the
macros write the list").

Differences to the upstream helper, on purpose:

* directories are normalised (absolute, no trailing slash) everywhere;
* the current measurement of a directory is read from its list file, never from
  ``SciCatMeasurements`` (which is only written, as a mirror, for other readers);
* the beamtime file is searched in the list directory and its parents (as
  given and resolved), then in ``BeamtimeFilePath``; no file means an error;
* ``SciCatDatasetListFileLocal`` may hold the host name to use.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from scingestor import listproto
from scingestor.listproto import Entry, is_true

logger = logging.getLogger(__name__)

DEFAULT_BEAMTIME_PATH = "/gpfs/current"
DEFAULT_BEAMTIME_PREFIX = "beamtime-metadata-"
DEFAULT_BEAMTIME_EXT = ".json"
DEFAULT_LIST_PREFIX = "scicat-datasets-"
DEFAULT_LIST_EXT = ".lst"
NEXUS_EXTENSIONS = (".nxs", ".nx", ".h5", ".ndf")
MEASUREMENTS_VAR = "SciCatMeasurements"



class RecordError(Exception):
    """A record cannot be written; the message is meant for the spock user."""


class BeamtimeFileError(RecordError):
    """No (or no unique) beamtime metadata file for a scan directory."""


class ListFileError(RecordError):
    """The dataset list file cannot be written."""


def check_name(name: str) -> str:
    """``name`` without surrounding blanks if THE name rule accepts it, else :class:`RecordError`.

    The rule is :func:`scingestor.listproto.check_name` (one token, no ``:`` or ``/``,
    not reserved, no control characters).
    """
    try:
        return listproto.check_name((name or "").strip())
    except listproto.UnsafeNameError as exc:
        raise RecordError(str(exc)) from None


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
    if isinstance(local, str) and listproto.parse_truth(local) is None:
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


@dataclass(frozen=True)
class Appended:
    """What :func:`update` wrote: the list file, the lines, the measurement before and after."""

    path: str
    lines: List[str]
    before: str
    after: str


def update(path: str, decide: Callable[[str], Sequence[str]]) -> Appended:
    """Append ``decide(current measurement)`` to the list ``path`` under its lock.

    :func:`scingestor.listproto.update_list`: the current measurement is replayed from
    the list while the lock is held, so the lines decided on it are still right when
    written. Raises :class:`ListFileError` when the list cannot be written.
    """
    seen: List[List[Entry]] = []

    def decide_entries(entries: List[Entry]) -> Sequence[str]:
        seen.append(entries)
        return decide(listproto.measurement_of(entries) or "")

    try:
        lines = listproto.update_list(path, decide_entries)
    except listproto.UnsafeNameError as exc:
        raise RecordError(str(exc)) from None
    except listproto.ListProtocolError as exc:
        raise ListFileError(str(exc)) from None
    before = listproto.measurement_of(seen[0]) or ""
    after = listproto.measurement_of(seen[0] + [listproto.parse_entry(line) for line in lines])
    return Appended(path, lines, before, after or "")


def current_measurement(path: str) -> str:
    """The measurement open in the list file ``path`` ('' when none), replayed from the list."""
    try:
        return listproto.current_measurement(path)
    except OSError as exc:
        raise ListFileError(f"cannot open list file {path}: {exc.strerror or exc}") from None


def mirror(env: Mapping[str, Any], directory: str, current: str) -> Dict[str, str]:
    """The new ``SciCatMeasurements`` value: ``directory`` mapped to ``current`` (or removed).

    A mirror for programs that still read the variable; never read for decisions here.
    Keys are normalised; a value that is not a dict is replaced.
    """
    value = env.get(MEASUREMENTS_VAR)
    table: Dict[str, str] = {}
    if isinstance(value, dict):
        for key, name in value.items():
            if isinstance(key, str) and key.strip() and isinstance(name, str) and name.strip():
                table[normalise_dir(key.strip())] = name.strip()
    table.pop(normalise_dir(directory), None)
    if current:
        table[normalise_dir(directory)] = current
    return table


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
    group, multi = base, False
    if nexus and "{ScanID" in base:
        name = base.format(ScanID=sid)
        group = _common_group(base.format(ScanID=11111111), base.format(ScanID=99999999))
    elif nexus and "%" in base:
        name = base % sid
        group = _common_group(base % 11111111, base % 99999999)
    else:
        name, multi = f"{base}_{sid:05d}", nexus and appendentry
    tag = now if reingest or "INIT" in _skip_modes(env.get("NeXusSkipAcquisitionModes")) \
        else None
    prefixed = "ScanNames" in env and not is_true(env["ScanNames"]) and not appendentry
    if prefixed:
        name = f"{os.path.basename(scan_dir(env))}/{name}"
    try:
        if multi:
            line = listproto.multiscan_record(base, f"{entryname}_{sid:05d}", name, tag)
        else:
            line = listproto.reingest_record(name, tag) if tag else listproto.scan_record(name)
    except listproto.UnsafeNameError as exc:
        raise RecordError(f"the scan cannot be listed: {exc}") from None
    return ScanLine(line, group, record_dir(env), nexus, prefixed)


def grouping_lines(env: Mapping[str, Any], scan: ScanLine, current: str,
                   now: Callable[[], float] = time.time) -> List[str]:
    """Auto-grouping lines for ``scan``, given the directory's ``current`` measurement.

    The scan is put into the measurement named after its base name; a
    different current measurement of the directory is closed first.
    ``ScanNamesNoMetadata`` drops the scan line, ``ScanNamesNoGrouping`` the
    start/stop/update lines.
    """
    nometa = is_true(env.get("ScanNamesNoMetadata"))
    nogroup = is_true(env.get("ScanNamesNoGrouping"))
    lines: List[str] = []
    try:
        if not nometa and not nogroup and current != scan.group:
            lines.extend(listproto.start_lines(current, scan.group, now))
        if not nometa:
            lines.append(scan.line)
            if not nogroup:
                lines.append(listproto.stop_record())
        if not nogroup:
            lines.append(listproto.reingest_record(scan.group, now))
    except listproto.UnsafeNameError as exc:
        raise RecordError(f"the scan cannot be grouped: {exc}") from None
    return lines


def dataset_lines(env: Mapping[str, Any], current: str = "", reingest: bool = False,
                  appendentry: bool = False, entryname: str = "scan", grouping: bool = True,
                  now: Callable[[], float] = time.time) -> List[str]:
    """Lines for the last scan, with auto grouping when enabled.

    ``current`` is the measurement open in the list (see :func:`update`).
    """
    scan = scan_line(env, reingest, appendentry, entryname, now)
    if scan is None:
        return []
    if grouping and (is_true(env.get("SciCatAutoGrouping")) or scan.dir_prefixed):
        return grouping_lines(env, scan, current, now)
    return [scan.line]
