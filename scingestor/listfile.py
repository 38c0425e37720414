"""The dataset list protocol: reading ``scicat-datasets-<id>.lst`` and classifying its lines."""

from __future__ import annotations

import enum
import logging
import os
from dataclasses import dataclass
from typing import Optional

logger = logging.getLogger(__name__)

COMMAND_PREFIX = "__command__"


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
    extra_tokens: tuple[str, ...] = ()
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
    def datablock_tokens(self) -> tuple[str, ...]:
        """Scan name plus detector directories: one datablock generator argument each."""
        return (self.scanname,) + self.extra_tokens


class UnsafeNameError(ValueError):
    """A scan name or token would leave the allowed directory trees or hide control bytes."""


def check_scan_name(name: str) -> None:
    """Reject empty, absolute, ``..``-containing or control-character scan names."""
    if not name or not name.strip():
        raise UnsafeNameError("empty scan name")
    if any(ord(char) < 32 or ord(char) == 127 for char in name):
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
    if any(ord(char) < 32 or ord(char) == 127 for char in token):
        raise UnsafeNameError(f"token {token!r} contains control characters")
    if token.startswith("/"):
        raise UnsafeNameError(f"token {token!r} is an absolute path")


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


def _parse_command(line: str, lineno: int, tokens: list[str]) -> Entry:
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


def parse_text(text: str) -> list[Entry]:
    """Parse the text of a list file into entries, in file order."""
    entries = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if line:
            entries.append(parse_entry(line, number))
    return entries


def read_entries(path: str) -> list[Entry]:
    """Read a dataset list file; undecodable bytes are replaced and reported."""
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        text = data.decode("utf-8", errors="replace")
        lineno = data[: exc.start].count(b"\n") + 1
        logger.warning("%s:%d: undecodable bytes replaced (%s)", path, lineno, exc.reason)
    return parse_text(text)


def measurement_of(entries: list[Entry]) -> Optional[str]:
    """The measurement open at the end of ``entries`` (``None`` when none is open)."""
    current: Optional[str] = None
    for entry in entries:
        if entry.kind is EntryKind.START:
            current = entry.measurement
        elif entry.kind is EntryKind.STOP:
            current = None
    return current
