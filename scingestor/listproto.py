"""The dataset-list protocol in one place: read, build and append dataset list lines.

Everything that reads or writes a dataset list goes through this module: the service
(and so the Tango device), the Sardana macros and the tools. It needs nothing but the
Python standard library, so it can also be imported on its own (e.g. copied next to a
macro library); see README "The dataset list" and docs/architecture.md "The dataset-list
protocol".

* reading: :func:`parse_entry` → :class:`Entry` (:class:`EntryKind`), :func:`parse_text`,
  :func:`read_entries`;
* the current measurement of a list, derived by replaying it: :func:`measurement_of`,
  :func:`current_measurement`; the last scan: :func:`last_scan`;
* names: :func:`check_name` (what we write), :func:`check_scan_name` / :func:`check_token`
  (what we accept when reading lines others wrote);
* record builders: :func:`scan_record`, :func:`reingest_record`, :func:`multiscan_record`,
  :func:`start_record`, :func:`stop_record`, and the record sequences of the measurement commands
  :func:`start_lines`, :func:`stop_lines`, :func:`update_lines`, :func:`make_lines`;
* writing: :func:`append_records` and :func:`update_list` (read, decide and append under
  one lock), durable (fsync);
* truth values of settings: :func:`parse_truth`, :func:`is_true`.
"""

from __future__ import annotations

import enum
import errno
import fcntl
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, List, Optional, Sequence, Tuple

logger = logging.getLogger(__name__)

COMMAND_PREFIX = "__command__"
#: The lock file of a list is ``<list>`` + this suffix (see :func:`append_records`).
LOCK_SUFFIX = ".lock"

Clock = Callable[[], float]


# ------------------------------------------------------------------------------- errors
class ListProtocolError(Exception):
    """Base of the errors of this module; the message is meant for the user."""


class UnsafeNameError(ListProtocolError, ValueError):
    """A name cannot be used in a record, or a line holds an unsafe name."""


class ListWriteError(ListProtocolError, OSError):
    """The dataset list cannot be read or written (an ``OSError`` too, with ``errno``)."""

    def __init__(self, code: Optional[int], message: str) -> None:
        super().__init__(message)
        self.errno = code


# ------------------------------------------------------------------------------ parsing
class EntryKind(enum.Enum):
    """What a dataset list line asks for."""

    START = "start"  # __command__ start NAME
    STOP = "stop"  # __command__ stop
    UNKNOWN_COMMAND = "unknown-command"
    SCAN = "scan"  # NAME [detector dirs ...]
    REINGEST = "reingest"  # NAME:tag [detector dirs ...]
    MULTISCAN = "multiscan"  # base::/entry;NAME[:tag]
    INVALID = "invalid"


@dataclass(frozen=True)
class Entry:
    """One non-empty, stripped line of a dataset list file."""

    line: str
    lineno: int
    kind: EntryKind
    scanname: str = ""
    masterscanname: str = ""
    entryname: str = ""
    extra_tokens: Tuple[str, ...] = ()
    measurement: str = ""
    reason: str = ""

    @property
    def is_command(self) -> bool:
        return self.kind in (EntryKind.START, EntryKind.STOP, EntryKind.UNKNOWN_COMMAND)

    @property
    def is_reingest(self) -> bool:
        """Lines processed by the re-ingest procedure in the daemon."""
        return self.kind in (EntryKind.REINGEST, EntryKind.MULTISCAN)

    @property
    def datablock_tokens(self) -> Tuple[str, ...]:
        """Scan name plus detector directories: one datablock generator argument each."""
        return (self.scanname,) + self.extra_tokens


def _has_control(text: str) -> bool:
    return any(ord(char) < 32 or ord(char) == 127 for char in text)


def check_scan_name(name: str) -> None:
    """The reading rule: reject empty, absolute, ``..``-containing or control-character names.

    Lines written by other programs (the NeXus writer, older macros) are read with this
    rule; a scan name may name a sub-directory (``calib/scan_00001``).
    """
    if not name or not name.strip():
        raise UnsafeNameError("empty scan name")
    if _has_control(name):
        raise UnsafeNameError(f"scan name {name!r} contains control characters")
    if name.startswith("/") or os.path.isabs(name):
        raise UnsafeNameError(f"scan name {name!r} is an absolute path")
    if ".." in name.split("/"):
        raise UnsafeNameError(f"scan name {name!r} leaves the scan directory ('..')")


def check_token(token: str) -> None:
    """Reject a detector-directory token that is absolute or has control characters.

    ``..`` is allowed here (``../lambda1/`` is a documented form); the pipeline
    checks that such a token stays inside the beamtime directory.
    """
    if _has_control(token):
        raise UnsafeNameError(f"token {token!r} contains control characters")
    if token.startswith("/"):
        raise UnsafeNameError(f"token {token!r} is an absolute path")


def check_name(name: str, subdir: bool = False) -> str:
    """The writing rule: return ``name`` if it may be written into a record, else raise.

    Every measurement or scan name that goes into a record we build passes here (see
    docs/architecture.md "The name rule"): one token, so no white space; no ``:`` (it
    starts the re-ingest tag); not ``__command__``, ``.`` or ``..``; no control
    characters; and no ``/`` - except, with ``subdir``, for a scan name in a
    sub-directory of the list directory, which must then stay inside it (not absolute,
    no ``..`` component). Raises :class:`UnsafeNameError`; nothing is stripped.
    """
    if not isinstance(name, str) or not name:
        raise UnsafeNameError("invalid name '': the name is empty")
    why = ""
    if any(char.isspace() for char in name):
        why = "it contains white space"
    elif _has_control(name):
        why = "it contains control characters"
    elif ":" in name:
        why = "it contains ':'"
    elif "/" in name and not subdir:
        why = "it contains '/'"
    elif name in (COMMAND_PREFIX, ".", ".."):
        why = "the name is reserved"
    else:
        try:
            check_scan_name(name)
        except UnsafeNameError:
            why = "it leaves the list directory"
        else:
            if any(part in ("", ".") for part in name.split("/")):
                why = "it has an empty or '.' path component"
    if why:
        raise UnsafeNameError(f"invalid name {name!r}: {why}")
    return name


def parse_entry(line: str, lineno: int = 0) -> Entry:
    """Classify one stripped, non-empty list line."""
    tokens = [token for token in line.split(" ") if token]
    first = tokens[0]
    if first == COMMAND_PREFIX:
        return _parse_command(line, lineno, tokens)
    extra = tuple(tokens[1:])
    try:
        for token in extra:
            check_token(token)
        if "::/" in first:
            master, rest = first.split("::/", 1)
            entry, _, name = rest.partition(";")
            name = (name or master).split(":", 1)[0]
            check_scan_name(master)
            check_scan_name(name)
            return Entry(line, lineno, EntryKind.MULTISCAN, name, master, entry, extra)
        if ":" in first:
            name = first.split(":", 1)[0]
            check_scan_name(name)
            return Entry(line, lineno, EntryKind.REINGEST, name, name, "", extra)
        check_scan_name(first)
        return Entry(line, lineno, EntryKind.SCAN, first, first, "", extra)
    except UnsafeNameError as exc:
        return Entry(line, lineno, EntryKind.INVALID, reason=str(exc))


def _parse_command(line: str, lineno: int, tokens: List[str]) -> Entry:
    verb = tokens[1] if len(tokens) > 1 else ""
    if verb == "stop":
        return Entry(line, lineno, EntryKind.STOP)
    if verb == "start":
        if len(tokens) < 3:
            return Entry(line, lineno, EntryKind.INVALID, reason="'__command__ start' needs a name")
        name = tokens[2]
        try:
            check_scan_name(name)
        except UnsafeNameError as exc:
            return Entry(line, lineno, EntryKind.INVALID, reason=f"measurement name: {exc}")
        return Entry(line, lineno, EntryKind.START, measurement=name)
    reason = f"unknown command {verb!r}" if verb else "command without a verb"
    return Entry(line, lineno, EntryKind.UNKNOWN_COMMAND, reason=reason)


def parse_text(text: str) -> List[Entry]:
    """Parse the text of a list file into entries, in file order (blank lines dropped)."""
    entries = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if line:
            entries.append(parse_entry(line, number))
    return entries


def _decode(data: bytes, path: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        lineno = data[: exc.start].count(b"\n") + 1
        logger.warning("%s:%d: undecodable bytes replaced (%s)", path, lineno, exc.reason)
        return data.decode("utf-8", errors="replace")


def read_entries(path: str) -> List[Entry]:
    """Read a dataset list file; undecodable bytes are replaced and reported."""
    with open(path, "rb") as handle:
        data = handle.read()
    return parse_text(_decode(data, path))


# ------------------------------------------------------------------ derived state
def measurement_of(entries: Iterable[Entry]) -> Optional[str]:
    """The measurement open at the end of ``entries`` (``None`` when none is open)."""
    current: Optional[str] = None
    for entry in entries:
        if entry.kind is EntryKind.START:
            current = entry.measurement
        elif entry.kind is EntryKind.STOP:
            current = None
    return current


def current_measurement(path: str) -> str:
    """The measurement open in the list file ``path`` ('' when none, or no file yet)."""
    try:
        return measurement_of(read_entries(path)) or ""
    except FileNotFoundError:
        return ""


def last_scan(entries: Sequence[Entry]) -> Optional[str]:
    """Name of the last scan listed (measurement datasets and commands excluded)."""
    measurements = {entry.measurement for entry in entries if entry.kind is EntryKind.START}
    for entry in reversed(entries):
        if (not entry.is_command and entry.kind is not EntryKind.INVALID
                and entry.scanname not in measurements):
            return entry.scanname
    return None


# ------------------------------------------------------------------------ builders
def start_record(name: str) -> str:
    """``__command__ start NAME``: open measurement ``name``."""
    return f"{COMMAND_PREFIX} start {check_name(name)}"


def stop_record() -> str:
    """``__command__ stop``: close the open measurement."""
    return f"{COMMAND_PREFIX} stop"


def reingest_record(name: str, now: Clock = time.time, subdir: bool = True) -> str:
    """``NAME:<time>``: (re-)ingest scan or measurement ``name`` once more."""
    return f"{check_name(name, subdir=subdir)}:{now()}"


def scan_record(name: str) -> str:
    """``NAME``: ingest scan ``name`` (a sub-directory of the list directory is allowed)."""
    return check_name(name, subdir=True)


def multiscan_record(master: str, entry: str, scan: str, now: Optional[Clock] = None) -> str:
    """``MASTER::/ENTRY;SCAN``: scan ``scan`` stored as entry ``entry`` of file ``master``.

    With ``now``, the ``:<time>`` tag is added (processed once more).
    """
    check_name(master, subdir=True)
    check_name(entry)
    check_name(scan)
    tag = f":{now()}" if now is not None else ""
    return f"{master}::/{entry};{scan}{tag}"


def stop_lines(current: Optional[str], now: Clock = time.time) -> List[str]:
    """Close the open measurement ``current`` (if any) and ask for its dataset.

    ``current`` comes from the list (another program may have started it): when it
    cannot be written back as ``NAME:<time>``, only the measurement is closed.
    """
    lines = [stop_record()]
    if current:
        try:
            lines.append(reingest_record(current, now))
        except UnsafeNameError as exc:
            logger.warning("measurement closed without sending its dataset: %s", exc)
    return lines


def start_lines(current: Optional[str], name: str, now: Clock = time.time) -> List[str]:
    """Close ``current`` (if any), then open ``name``; ``name`` '' only closes."""
    lines = stop_lines(current, now) if current else []
    return lines + ([start_record(name)] if name else [])


def update_lines(current: str, now: Clock = time.time) -> List[str]:
    """Send measurement ``current`` now and keep it open."""
    return stop_lines(current, now) + [start_record(current)]


def make_lines(current: Optional[str], name: str, scan: str, now: Clock = time.time) -> List[str]:
    """Start ``name`` (closing ``current``) and add the already listed ``scan`` to it."""
    return start_lines(current, name, now) + [reingest_record(scan, now)]


# ------------------------------------------------------------------------- writing
def check_record(record: str) -> str:
    """Return ``record`` if it can be appended as one line (non-blank, no line break)."""
    if not isinstance(record, str) or not record.strip():
        raise ListProtocolError(f"invalid list record {record!r}: it is empty")
    if "\n" in record or "\r" in record:
        raise ListProtocolError(f"invalid list record {record!r}: it contains a line break")
    return record


def _lock_fd(path: str) -> int:
    """Open the lock file ``<path>.lock``; the list file itself when that is impossible."""
    for candidate, flags in ((path + LOCK_SUFFIX, os.O_RDWR | os.O_CREAT),
                             (path, os.O_RDONLY)):
        try:
            return os.open(candidate, flags | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            if candidate == path:
                raise ListWriteError(exc.errno, f"cannot open list file {path}: "
                                     f"{exc.strerror or exc}") from None
            logger.debug("lock file %s%s not usable (%s)", path, LOCK_SUFFIX, exc)
    raise AssertionError("unreachable")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def update_list(path: str, decide: Callable[[List[Entry]], Sequence[str]]) -> List[str]:
    """Under the list's lock: read the entries, append the records ``decide(entries)`` returns.

    This is the one way records reach a dataset list. The lock is an exclusive
    ``flock`` on ``<path>.lock`` (created beside the list; the list file itself when the
    directory does not allow that), so writers through this module never interleave
    and a decision taken on the list (e.g. which measurement to close) still holds when
    its records are written. The records are written as ``"\\n" + record`` each - the
    layout the Sardana macros always had: a new file starts with an empty line, and the
    last line of a file is never extended, whether or not the file ends in a newline -
    in one ``write`` per call, then the file (and a new file's directory) is fsynced.
    Exceptions of ``decide`` pass through with nothing written. Raises
    :class:`ListWriteError` when the list cannot be read or written,
    :class:`ListProtocolError` for an empty record or one with a line break.
    """
    lock = _lock_fd(path)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            entries = read_entries(path) if os.path.exists(path) else []
        except OSError as exc:
            raise ListWriteError(exc.errno, f"cannot open list file {path}: "
                                 f"{exc.strerror or exc}") from None
        records = [check_record(record) for record in decide(entries)]
        if records:
            _append_locked(path, records)
        return records
    finally:
        os.close(lock)  # releases the flock


def _append_locked(path: str, records: Sequence[str]) -> None:
    created = not os.path.exists(path)
    data = "".join("\n" + record for record in records).encode("utf-8")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        raise ListWriteError(exc.errno, f"cannot open list file {path}: "
                             f"{exc.strerror or exc}") from None
    try:
        _write_all(fd, data)
        os.fsync(fd)
    except OSError as exc:
        reason = "interrupted" if exc.errno == errno.EINTR else exc.strerror or str(exc)
        raise ListWriteError(exc.errno, f"cannot write list file {path}: {reason}") from None
    finally:
        os.close(fd)
    if created:
        _fsync_dir(os.path.dirname(path) or ".")
    logger.debug("appended %r to %s", records, path)


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def append_records(path: str, records: Sequence[str]) -> List[str]:
    """Append ``records`` to the list ``path`` durably under its lock (see :func:`update_list`).

    Every record is checked first, so a bad one leaves the file untouched.
    """
    checked = [check_record(record) for record in records]
    return update_list(path, lambda _entries: checked)


# --------------------------------------------------------------------- truth values
TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
FALSE_WORDS = frozenset({"false", "no", "off", "0"})


def parse_truth(value: Any) -> Optional[bool]:
    """``True``/``False`` for a boolean, 0/1 or one of :data:`TRUE_WORDS`/:data:`FALSE_WORDS`
    (any case, surrounding blanks ignored); ``None`` for anything else.

    The strict reading, used for the configuration file (README "Configuration").
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    return None


def is_true(value: Any) -> bool:
    """The lenient reading of a switch (Sardana environment variables, docs/sardana.md).

    As :func:`parse_truth`, and otherwise: ``None``, ``""`` and ``"none"`` are false,
    any other text is true, any other value is ``bool(value)``.
    """
    truth = parse_truth(value)
    if truth is not None:
        return truth
    if isinstance(value, str):
        return value.strip().lower() not in ("", "none")
    return bool(value)
