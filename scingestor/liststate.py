"""What a dataset list has said so far, kept in memory and read incrementally.

One :class:`ListState` per watched list (owned by the pipeline's
:class:`~scingestor.pipeline.ListProcessor`). Each pass reads only the bytes
appended since the previous one (:class:`~scingestor.follow.FileFollower`) and
keeps, instead of the entries, the minimal replay state (docs/architecture.md
"Reading only what was appended", README "Dataset lists"):

* the open measurement after the last complete line (``__command__ start/stop``
  replayed once, when the line is read);
* the measurements started so far, with the position of their first ``start``
  (an entry sees the measurements started *before* it, as in a full replay);
* the *pending* entries: scan lines that were not ingested when they were read,
  each with the measurement state at its position. A pass looks at these only,
  and drops those that are ingested now; ingested is monotonic as long as the
  ingested list is only appended to, so nothing else can become waiting - and
  when that list is rewritten (its ``generation`` changes) the dataset list is
  read again from the start.

The last line (the text after the last ``\\n``) is a line, exactly as in
:func:`scingestor.listproto.parse_text`: the list protocol writes ``"\\n" + record``,
so the newest record never ends in a newline. It is parsed again on every pass
and committed to the state only once a newline follows it; a writer still in the
middle of that line is therefore seen with the line's current text on each pass,
as before. A list replaced, truncated or rewritten (see :mod:`scingestor.follow`)
is read again from the start, which gives the same state as a full replay.
"""

from __future__ import annotations

import errno
import logging
import os
from typing import Callable, Container, Optional, Tuple

from .follow import FileFollower
from .listproto import Entry, EntryKind, parse_entry

logger = logging.getLogger(__name__)

#: The measurement state (``MeasurementState`` fields): active, measurement, last measurement.
Replay = Tuple[bool, str, str]
NO_MEASUREMENT: Replay = (False, "", "")

Reporter = Callable[[Entry, str], None]
IsIngested = Callable[[str], bool]


class Pending:
    """A scan line waiting to be ingested, with the measurement state at its position."""

    __slots__ = ("entry", "replay", "index")

    def __init__(self, entry: Entry, replay: Replay, index: int) -> None:
        self.entry = entry
        self.replay = replay
        self.index = index


class StartedBefore(Container[str]):
    """The measurements started before entry number ``index`` (``name in started``)."""

    __slots__ = ("_started", "_index")

    def __init__(self, started: dict[str, int], index: int) -> None:
        self._started = started
        self._index = index

    def __contains__(self, name: object) -> bool:
        return self._started.get(name, self._index) < self._index  # type: ignore[arg-type]


class ListState:
    """The replay state and the pending entries of one dataset list."""

    def __init__(self, path: str, *, execute_commands: bool, report: Reporter) -> None:
        self.path = path
        self.follower = FileFollower(path)
        self._execute = execute_commands
        self._report = report
        self._generation: Optional[int] = None
        self._reset()

    def _reset(self) -> None:
        self._lineno = 0  # complete lines read ("\n"-terminated, blank ones included)
        self._index = 0  # non-blank lines read
        self._replay: Replay = NO_MEASUREMENT
        self._started: dict[str, int] = {}
        self._pending: dict[int, Pending] = {}
        self._tail: Optional[Pending] = None
        self._end: Replay = NO_MEASUREMENT

    @property
    def bytes_read(self) -> int:
        return self.follower.bytes_read

    # -- reading -------------------------------------------------------------------
    def update(self, generation: int, is_ingested: IsIngested) -> None:
        """Read what was appended; everything again when the list or the ingested list
        was replaced. Raises ``FileNotFoundError`` when the list does not exist."""
        if generation != self._generation:
            self.follower.forget()
            self._generation = generation
        chunk = self.follower.read()
        if chunk is None:
            self._reset()
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), self.path)
        if chunk.restart:
            self._reset()
        if chunk.lines:
            segments = _decode(chunk.lines, self.path, self._lineno).split("\n")
            segments.pop()  # the empty text after the last "\n"
            for raw in segments:
                self._lineno += 1
                line = raw.strip()
                if line:
                    self._commit(parse_entry(line, self._lineno), is_ingested)
        self._tail = None
        self._end = self._replay
        line = chunk.tail.decode("utf-8", errors="replace").strip()
        if line:
            entry = parse_entry(line, self._lineno + 1)
            if entry.is_command or entry.kind is EntryKind.INVALID:
                self._end = self._apply(entry, self._index, commit=False)
            elif not is_ingested(entry.line):
                self._tail = Pending(entry, self._replay, self._index)

    def _commit(self, entry: Entry, is_ingested: IsIngested) -> None:
        index = self._index
        self._index += 1
        if entry.is_command or entry.kind is EntryKind.INVALID:
            self._replay = self._apply(entry, index, commit=True)
        elif not is_ingested(entry.line):
            self._pending[index] = Pending(entry, self._replay, index)

    def _apply(self, entry: Entry, index: int, commit: bool) -> Replay:
        """The measurement state after a command (or invalid) line; reports bad lines."""
        replay = self._replay
        if entry.kind is EntryKind.INVALID:
            self._report(entry, entry.reason)
        elif not self._execute:
            pass
        elif entry.kind is EntryKind.START:
            if commit:
                self._started.setdefault(entry.measurement, index)
            return (True, entry.measurement, entry.measurement)
        elif entry.kind is EntryKind.STOP:
            if not replay[0]:
                self._report(entry, "'__command__ stop' without a running measurement")
            return (False, "", replay[2])
        else:
            self._report(entry, entry.reason)
        return replay

    # -- what a pass looks at ----------------------------------------------------------
    def pending(self) -> list[Pending]:
        """The entries to look at, in list order (the last, unterminated line included)."""
        items = list(self._pending.values())
        if self._tail is not None:
            items.append(self._tail)
        return items

    def done(self, item: Pending) -> None:
        """``item`` is ingested: never look at it again (unless the list is read again)."""
        self._pending.pop(item.index, None)

    def waiting(self, is_ingested: IsIngested) -> list[Entry]:
        """The pending entries not ingested yet (the ingested ones are dropped)."""
        entries = []
        for item in self.pending():
            if is_ingested(item.entry.line):
                self.done(item)
            else:
                entries.append(item.entry)
        return entries

    def started_before(self, item: Pending) -> StartedBefore:
        return StartedBefore(self._started, item.index)

    @property
    def measurement(self) -> Optional[str]:
        """The measurement open at the end of the list (``None`` when none)."""
        return self._end[1] if self._end[0] else None


def _decode(data: bytes, path: str, lineno: int) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = lineno + data[: exc.start].count(b"\n") + 1
        logger.warning("%s:%d: undecodable bytes replaced (%s)", path, where, exc.reason)
        return data.decode("utf-8", errors="replace")
